import { z } from 'zod';
import { CollectiveError } from '../../shared/errors.js';
import { formatZodIssues } from '../../shared/zod-issues.js';

// Options of the gRPC data plane and the peer list the coordinator hands out after registration,
// validated once where they enter (the lead's worker main).

const MiB = 1024 * 1024;

export const DataPlaneOptionsSchema = z.object({
  /** Interface the data-plane server listens on ('0.0.0.0' in a cluster). */
  host: z.string().min(1).default('127.0.0.1'),
  /** 0 picks a free port; the worker registers the actual one with the coordinator. */
  port: z.number().int().min(0).max(65535).default(0),
  /** Bytes per response message: about 1 MiB, whole floats, under grpc-js's 4 MiB receive limit. */
  pieceBytes: z
    .number()
    .int()
    .min(4)
    .max(4 * MiB - 1024)
    .refine((n) => n % 4 === 0, 'must be a multiple of 4 (whole float32 values)')
    .default(MiB),
  /**
   * HTTP/2 receive window of the pulling client (`grpc-node.flow_control_window`), per stream and
   * per connection. The 64 KiB default caps a stream near 0.3-0.4 GB/s on loopback; 16 MiB lets the
   * sender run ahead of the round trip. `null` keeps grpc-js's default.
   */
  flowControlWindow: z
    .number()
    .int()
    .min(65_535)
    .max(2 ** 31 - 1)
    .nullable()
    .default(16 * MiB),
});

export type DataPlaneOptionsInput = z.input<typeof DataPlaneOptionsSchema>;
export type DataPlaneOptions = Readonly<z.output<typeof DataPlaneOptionsSchema>>;

export const PeerAddressSchema = z.object({
  rank: z.number().int().min(0),
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535),
});

export type PeerAddress = Readonly<z.output<typeof PeerAddressSchema>>;


export function parseDataPlaneOptions(input: unknown): DataPlaneOptions {
  const parsed = DataPlaneOptionsSchema.safeParse(input ?? {});
  if (!parsed.success) throw new CollectiveError(`invalid data-plane options: ${formatZodIssues(parsed.error)}`);
  return Object.freeze(parsed.data);
}

/** The peers of a world of N ranks: ranks 0..N-1, each exactly once; returned sorted by rank. */
export function parsePeers(input: unknown): readonly PeerAddress[] {
  const parsed = z.array(PeerAddressSchema).min(1).safeParse(input);
  if (!parsed.success) throw new CollectiveError(`invalid data-plane peers: ${formatZodIssues(parsed.error)}`);
  const peers = [...parsed.data].sort((a, b) => a.rank - b.rank);
  peers.forEach((p, i) => {
    if (p.rank !== i) throw new CollectiveError(`invalid data-plane peers: ranks must be 0..${peers.length - 1} once each, got ${parsed.data.map((q) => q.rank).join(',')}`);
  });
  return Object.freeze(peers.map((p) => Object.freeze(p)));
}

/** A grpc-js target for host:port (IPv6 literals get brackets). */
export function peerTarget(peer: { host: string; port: number }): string {
  const host = peer.host.includes(':') && !peer.host.startsWith('[') ? `[${peer.host}]` : peer.host;
  return `${host}:${peer.port}`;
}
