// Collectives benchmark: the gRPC ring against raw loopback TCP and against the star baseline,
// measured in one run (DESIGN.md, Performance).
//
//   npx tsc -p . && node dist/bench/collectives.js [--mib 128] [--worlds 2,4] [--repeats 3] [--tcp-mib 256]
//
// 1. Raw TCP: this process writes --tcp-mib MiB in 1 MiB writes (with backpressure) to a sink
//    process over loopback; the yardstick for "data-plane throughput / raw TCP".
// 2. For each world size N: N worker processes (test/helpers/collective-worker.ts), each with a
//    gRPC data plane, run allReduce and reduceScatter of a --mib MiB buffer, first with grpc-js's
//    default flow-control window, then with 16 MiB; then the star baseline (every rank sends its
//    whole buffer to rank 0, which sums and sends the result back).
// 3. The same ring (16 MiB window) with mutual TLS on the data plane (a CA and certificate made with
//    openssl, as README "TLS"): GB/s and CPU s per GB against plaintext. Skipped without openssl.
// Throughput is payload bytes sent per rank / time of the operation (the slowest rank's, best of
// --repeats after one warm-up). The last line is `BENCH_COLLECTIVES {json}` for CI logs.
import { connect } from 'node:net';
import { loadavg, cpus } from 'node:os';

import { parseArgs } from 'node:util';
import { paddedFlatSize } from '../shared/sharding/flat-shard.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RingProcs, WorkerProc, type CollectiveOp, type RanMessage } from '../test/helpers/collective-procs.js';
import { makeCa, makeTlsDir, opensslMissing } from '../test/helpers/tls-certs.js';

const MiB = 1024 * 1024;
const TOKEN = 'bench-collectives-token';

function usage(message: string): never {
  process.stderr.write(`${message}\nusage: node dist/bench/collectives.js [--mib 128] [--worlds 2,4] [--repeats 3] [--tcp-mib 256]\n`);
  process.exit(2);
}

function positiveInt(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) usage(`--${name}: expected a positive integer, got ${value}`);
  return n;
}

let args;
try {
  args = parseArgs({
    options: {
      mib: { type: 'string', default: '128' },
      worlds: { type: 'string', default: '2,4' },
      repeats: { type: 'string', default: '3' },
      'tcp-mib': { type: 'string', default: '256' },
    },
  }).values;
} catch (e) {
  usage(e instanceof Error ? e.message : String(e));
}
const bufferMiB = positiveInt('mib', args.mib);
const worlds = args.worlds.split(',').map((w) => positiveInt('worlds', w));
if (worlds.some((w) => w < 2)) usage('--worlds: every world needs at least 2 ranks');
const repeats = positiveInt('repeats', args.repeats);
const tcpMiB = positiveInt('tcp-mib', args['tcp-mib']);

const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');
const gbps = (bytes: number, seconds: number) => bytes / seconds / 1e9;

interface TcpResult {
  gbps: number;
  /** Sender + receiver CPU seconds per GB moved (the fastest round's). */
  cpuSecondsPerGB: number;
}

/** One-way loopback TCP between two Node processes: best of 3 sends of `bytes`. */
async function rawTcp(bytes: number): Promise<TcpResult> {
  const sink = WorkerProc.spawn({ mode: 'tcp-sink', bytes }, 'tcp sink');
  try {
    const { port } = await sink.next('listening', 30_000);
    const piece = Buffer.alloc(MiB, 7);
    let best = { seconds: Infinity, cpuSeconds: 0 };
    for (let round = 0; round < 3; round++) {
      const socket = connect(port, '127.0.0.1');
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      const cpu0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      for (let sent = 0; sent < bytes; sent += piece.length) {
        if (!socket.write(piece)) await new Promise((resolve) => socket.once('drain', resolve));
      }
      const received = await sink.next('tcp-received', 60_000);
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const cpu = process.cpuUsage(cpu0);
      if (seconds < best.seconds) best = { seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 + received.cpuSeconds };
      socket.destroy();
    }
    return { gbps: gbps(bytes, best.seconds), cpuSecondsPerGB: best.cpuSeconds / (bytes / 1e9) };
  } finally {
    await sink.stop();
  }
}

interface Measured {
  world: number;
  op: CollectiveOp;
  window: string;
  seconds: number;
  bytesSentPerRank: number;
  /** Payload bytes sent by the busiest rank (rank 0 in the star). */
  bytesSentMax: number;
  gbpsPerRank: number;
  vsBound: number;
  /** CPU time (user + system) of the busiest rank per operation. */
  cpuSecondsMax: number;
  /** Mean over ranks of CPU seconds per GB sent (each rank receives as much as it sends, but in the star). */
  cpuSecondsPerGB: number;
}

/** Best over repeats of the slowest rank's time; one warm-up run first. */
async function measure(procs: RingProcs, world: number, op: CollectiveOp, window: string, length: number): Promise<Measured> {
  const request = { op, seed: 1, length, returnResult: false };
  await procs.run({ ...request, tag: `${op}/warm-up`, repeats: 1 });
  const ran: RanMessage[] = await procs.run({ ...request, tag: `${op}/timed`, repeats });
  const seconds = Math.min(...Array.from({ length: repeats }, (_, i) => Math.max(...ran.map((m) => m.seconds[i]!))));
  const perRank = ran.map((m) => m.bytesSent / repeats);
  const bytes = length * 4;
  const phases = op === 'allReduce' ? 2 : 1;
  const bound = (phases * (world - 1) * bytes) / world;
  // Every rank must agree on the result: a fast wrong answer is not a result.
  const hashes = new Set(op === 'reduceScatter' ? [] : ran.map((m) => m.sha256));
  if (hashes.size > 1) throw new Error(`${op} on ${world} ranks: ranks disagree on the result`);
  const mean = perRank.reduce((a, b) => a + b, 0) / world;
  const cpu = ran.map((m) => m.cpuSeconds / repeats);
  return {
    world,
    op,
    window,
    seconds,
    bytesSentPerRank: mean,
    bytesSentMax: Math.max(...perRank),
    gbpsPerRank: gbps(mean, seconds),
    vsBound: op === 'star' ? Number.NaN : mean / bound,
    cpuSecondsMax: Math.max(...cpu),
    cpuSecondsPerGB: cpu.reduce((a, b) => a + b, 0) / world / (mean / 1e9),
  };
}

async function main(): Promise<void> {
  console.log(`kp-coord collectives bench: node ${process.version}, ${cpus().length} cpus, buffer ${bufferMiB} MiB, worlds ${worlds.join(',')}, best of ${repeats}`);
  console.log(`load average at start: ${load()} (other busy processes make every number below worse)`);
  const tcp = await rawTcp(tcpMiB * MiB);
  const tcpGbps = tcp.gbps;
  console.log(`raw loopback TCP, one way, ${tcpMiB} MiB in 1 MiB writes: ${tcpGbps.toFixed(3)} GB/s, ${tcp.cpuSecondsPerGB.toFixed(2)} CPU s per GB (sender + receiver)`);

  const results: Measured[] = [];
  for (const world of worlds) {
    const length = paddedFlatSize((bufferMiB * MiB) / 4, world);
    for (const [window, flowControlWindow] of [['default', null], ['16MiB', 16 * MiB]] as const) {
      const procs = await RingProcs.start({ tokens: Array<string>(world).fill(TOKEN), dataPlane: { flowControlWindow }, timeoutMs: 300_000, replyTimeoutMs: 600_000 });
      try {
        const ops: CollectiveOp[] = window === '16MiB' ? ['allReduce', 'reduceScatter', 'star'] : ['allReduce', 'reduceScatter'];
        for (const op of ops) {
          const m = await measure(procs, world, op, window, length);
          results.push(m);
          console.log(
            `  N=${world} ${op.padEnd(13)} window ${window.padEnd(7)} ${(m.seconds * 1e3).toFixed(0).padStart(6)} ms  ${m.gbpsPerRank.toFixed(3)} GB/s sent per rank, busiest rank ${m.cpuSecondsMax.toFixed(2)} CPU s`,
          );
        }
      } finally {
        await procs.stop();
      }
    }
  }

  // Mutual TLS on the same ring, 16 MiB window.
  const tlsHome = mkdtempSync(join(tmpdir(), 'kp-bench-tls-'));
  try {
    if (opensslMissing) console.log(`mTLS runs skipped: ${opensslMissing}`);
    else {
      makeCa(join(tlsHome, 'ca'));
      const tlsDir = makeTlsDir(join(tlsHome, 'ca'), join(tlsHome, 'tls'));
      for (const world of worlds) {
        const length = paddedFlatSize((bufferMiB * MiB) / 4, world);
        const procs = await RingProcs.start({ tokens: Array<string>(world).fill(TOKEN), dataPlane: { flowControlWindow: 16 * MiB }, tlsDir, timeoutMs: 300_000, replyTimeoutMs: 600_000 });
        try {
          for (const op of ['allReduce', 'reduceScatter'] as const) {
            const m = await measure(procs, world, op, 'mtls', length);
            results.push(m);
            console.log(`  N=${world} ${op.padEnd(13)} mTLS 16MiB     ${(m.seconds * 1e3).toFixed(0).padStart(6)} ms  ${m.gbpsPerRank.toFixed(3)} GB/s sent per rank, ${m.cpuSecondsPerGB.toFixed(2)} CPU s per GB`);
          }
        } finally {
          await procs.stop();
        }
      }
    }
  } finally {
    rmSync(tlsHome, { recursive: true, force: true });
  }

  console.log('');
  const find = (world: number, op: CollectiveOp, window: string) => results.find((r) => r.world === world && r.op === op && r.window === window)!;
  const tls = (w: number, op: CollectiveOp, cell: (m: Measured, plain: Measured) => string) => {
    const m = results.find((r) => r.world === w && r.op === op && r.window === 'mtls');
    return m ? cell(m, find(w, op, '16MiB')) : '-';
  };
  const header = ['', ...worlds.map((w) => `N=${w}`)];
  const rows: [string, (w: number) => string][] = [
    ['allReduce time (ms), window 16 MiB', (w) => (find(w, 'allReduce', '16MiB').seconds * 1e3).toFixed(0)],
    ['allReduce GB/s sent per rank, 16 MiB', (w) => find(w, 'allReduce', '16MiB').gbpsPerRank.toFixed(3)],
    ['  same, default window', (w) => find(w, 'allReduce', 'default').gbpsPerRank.toFixed(3)],
    ['  16 MiB / default window', (w) => (find(w, 'allReduce', '16MiB').gbpsPerRank / find(w, 'allReduce', 'default').gbpsPerRank).toFixed(2)],
    ['reduceScatter GB/s sent per rank, 16 MiB', (w) => find(w, 'reduceScatter', '16MiB').gbpsPerRank.toFixed(3)],
    ['  same, default window', (w) => find(w, 'reduceScatter', 'default').gbpsPerRank.toFixed(3)],
    ['data plane / raw TCP (allReduce, 16 MiB)', (w) => (find(w, 'allReduce', '16MiB').gbpsPerRank / tcpGbps).toFixed(2)],
    ['  (reduceScatter, 16 MiB)', (w) => (find(w, 'reduceScatter', '16MiB').gbpsPerRank / tcpGbps).toFixed(2)],
    ['bytes sent per rank / (N-1)/N bound, allReduce', (w) => find(w, 'allReduce', '16MiB').vsBound.toFixed(4)],
    ['  reduceScatter', (w) => find(w, 'reduceScatter', '16MiB').vsBound.toFixed(4)],
    ['star all-reduce time (ms)', (w) => (find(w, 'star', '16MiB').seconds * 1e3).toFixed(0)],
    ['star / ring allReduce time', (w) => (find(w, 'star', '16MiB').seconds / find(w, 'allReduce', '16MiB').seconds).toFixed(2)],
    ['star rank 0 bytes sent / ring per rank', (w) => (find(w, 'star', '16MiB').bytesSentMax / find(w, 'allReduce', '16MiB').bytesSentPerRank).toFixed(2)],
    ['busiest rank CPU s: star / ring allReduce', (w) => (find(w, 'star', '16MiB').cpuSecondsMax / find(w, 'allReduce', '16MiB').cpuSecondsMax).toFixed(2)],
    ['ring allReduce CPU s per GB sent (+ received)', (w) => find(w, 'allReduce', '16MiB').cpuSecondsPerGB.toFixed(2)],
    ['  / raw TCP CPU s per GB (send + receive)', (w) => (find(w, 'allReduce', '16MiB').cpuSecondsPerGB / tcp.cpuSecondsPerGB).toFixed(2)],
    ['  GB sent / CPU s (one core per rank bound)', (w) => (1 / find(w, 'allReduce', '16MiB').cpuSecondsPerGB).toFixed(3)],
    ['mTLS allReduce GB/s sent per rank, 16 MiB', (w) => tls(w, 'allReduce', (m) => m.gbpsPerRank.toFixed(3))],
    ['  mTLS / plaintext GB/s', (w) => tls(w, 'allReduce', (m, p) => (m.gbpsPerRank / p.gbpsPerRank).toFixed(2))],
    ['  mTLS CPU s per GB sent (+ received)', (w) => tls(w, 'allReduce', (m) => m.cpuSecondsPerGB.toFixed(2))],
    ['  mTLS / plaintext CPU s per GB', (w) => tls(w, 'allReduce', (m, p) => (m.cpuSecondsPerGB / p.cpuSecondsPerGB).toFixed(2))],
    ['mTLS reduceScatter GB/s, 16 MiB', (w) => tls(w, 'reduceScatter', (m) => m.gbpsPerRank.toFixed(3))],
    ['  mTLS / plaintext GB/s', (w) => tls(w, 'reduceScatter', (m, p) => (m.gbpsPerRank / p.gbpsPerRank).toFixed(2))],
  ];
  const cells = rows.map(([label, cell]) => [label, ...worlds.map(cell)]);
  const widths = header.map((_, i) => Math.max(...[header, ...cells].map((row) => row[i]!.length)));
  const line = (row: readonly string[]) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of cells) console.log(line(row));
  console.log(`load average at end: ${load()}`);
  console.log('');
  console.log(`BENCH_COLLECTIVES ${JSON.stringify({ bufferMiB, repeats, rawTcpGbps: tcpGbps, rawTcpCpuSecondsPerGB: tcp.cpuSecondsPerGB, results: results.map((r) => ({ ...r, vsBound: Number.isNaN(r.vsBound) ? null : r.vsBound })) })}`);
}

main().catch((e: unknown) => {
  process.stderr.write(`collectives bench failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
