// A worker process for the collective tests and bench/collectives.ts, driven over IPC by
// collective-procs.ts. Modes (argv[2], a JSON WorkerSpec):
//   data-plane: start a gRPC data plane, report its port, join the peers it is sent, run collectives;
//   tcp-sink:   accept one TCP connection and report when `bytes` have arrived (raw-TCP yardstick).
import { createServer } from 'node:net';
import { createHash } from 'node:crypto';
import { dataPlaneCredentials, GrpcDataPlane } from '../../worker/collectives/grpc-transport.js';
import { loadMutualTls, tlsDirFiles } from '../../shared/tls/transport-security.js';
import { RingCollective } from '../../worker/collectives/ring-collective.js';
import { starAllReduce } from '../../worker/collectives/star-all-reduce.js';
import type { ChunkTransport } from '../../worker/collectives/chunk-transport.js';
import { rankBuffer } from './collective-buffers.js';
import type { ParentMessage, WorkerMessage, WorkerSpec } from './collective-procs.js';

const spec = JSON.parse(process.argv[2] ?? '{}') as WorkerSpec;

function reply(message: WorkerMessage): void {
  process.send?.(message);
}

async function dataPlaneWorker(s: Extract<WorkerSpec, { mode: 'data-plane' }>): Promise<void> {
  const plane = await GrpcDataPlane.listen(s.token, s.dataPlane, s.tlsDir ? dataPlaneCredentials(loadMutualTls(tlsDirFiles(s.tlsDir))) : {});
  let transport: ChunkTransport | null = null;
  let collective: RingCollective | null = null;
  reply({ type: 'listening', port: plane.port });
  process.on('message', (m: ParentMessage) => {
    void (async () => {
      if (m.type === 'connect') {
        transport = plane.connect(s.rank, m.peers);
        collective = new RingCollective(transport, { timeoutMs: s.timeoutMs });
        reply({ type: 'connected' });
      } else if (m.type === 'run') {
        try {
          if (!transport || !collective) throw new Error('run before connect');
          const pristine = rankBuffer(m.seed, s.rank, transport.world, m.length);
          const buf = pristine.slice();
          const seconds: number[] = [];
          const before = transport.bytesSent;
          let cpuSeconds = 0;
          for (let i = 0; i < m.repeats; i++) {
            buf.set(pristine);
            const tag = `${m.tag}/${i}`;
            const cpu0 = process.cpuUsage();
            const t0 = process.hrtime.bigint();
            if (m.op === 'star') await starAllReduce(transport, buf, tag, s.timeoutMs);
            else await collective[m.op](buf, tag);
            seconds.push(Number(process.hrtime.bigint() - t0) / 1e9);
            const cpu = process.cpuUsage(cpu0);
            cpuSeconds += (cpu.user + cpu.system) / 1e6;
          }
          const sha256 = createHash('sha256').update(new Uint8Array(buf.buffer)).digest('hex');
          reply({ type: 'ran', seconds, cpuSeconds, bytesSent: transport.bytesSent - before, sha256, result: m.returnResult ? buf : null });
        } catch (e) {
          reply({ type: 'failed', message: e instanceof Error ? e.message : String(e) });
        }
      } else if (m.type === 'close') {
        await plane.close();
        process.exit(0);
      }
    })();
  });
}

async function tcpSink(s: Extract<WorkerSpec, { mode: 'tcp-sink' }>): Promise<void> {
  const server = createServer((socket) => {
    let received = 0;
    let cpu0: NodeJS.CpuUsage | null = null;
    socket.on('data', (data: Buffer) => {
      cpu0 ??= process.cpuUsage();
      received += data.length;
      if (received >= s.bytes) {
        const cpu = process.cpuUsage(cpu0);
        reply({ type: 'tcp-received', bytes: received, cpuSeconds: (cpu.user + cpu.system) / 1e6 });
        socket.end();
      }
    });
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    reply({ type: 'listening', port: typeof address === 'object' && address ? address.port : 0 });
  });
  process.on('message', (m: ParentMessage) => {
    if (m.type === 'close') server.close(() => process.exit(0));
  });
}

// The parent's IPC channel closing means the parent is gone: never outlive it.
process.on('disconnect', () => process.exit(1));
(spec.mode === 'tcp-sink' ? tcpSink(spec) : dataPlaneWorker(spec)).catch((e: unknown) => {
  reply({ type: 'failed', message: e instanceof Error ? e.message : String(e) });
  process.exit(1);
});
