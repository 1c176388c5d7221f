import { spawnSync } from 'node:child_process';
import { CLI, CliProcess } from './kp-coord-process.js';

// Hosts without a cluster: each node (the coordinator, each worker) in its own Linux network
// namespace with one interface, eth0, joined by a veth pair to a bridge in a hub namespace, as
// pods on separate hosts are joined by a network. Private addresses (10.77.0.0/24) exist only
// inside these namespaces; the machine's own network is not touched. `cut` takes a node's link
// down at the hub (its packets are dropped, nothing is closed: a pulled cable, a host gone), and
// `restore` brings it back. Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and iproute2.

function ip(args: readonly string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.error?.message ?? r.stderr.trim()}`);
}

/** Why network namespaces cannot be made here, or false when they can. */
export function netnsUnavailable(): string | false {
  const probe = `kpc-probe-${process.pid}`;
  const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (r.error) return `network namespaces unavailable: iproute2 (ip) not found (${r.error.message}); apt-get install -y iproute2`;
  if (r.status !== 0) return `network namespaces unavailable: "ip netns add" failed (${r.stderr.trim()}); run as root (CI's .ci/run does)`;
  spawnSync('ip', ['netns', 'del', probe]);
  return false;
}

export interface NetnsNode {
  readonly name: string;
  readonly ns: string;
  readonly address: string;
  /** The hub end of its veth pair (what `cut` takes down). */
  readonly hubLink: string;
}

export class NetnsLab {
  private readonly hub: string;
  readonly nodes = new Map<string, NetnsNode>();
  private readonly procs: CliProcess[] = [];

  /** `names` get 10.77.0.1, .2, ... in order. */
  constructor(names: readonly string[]) {
    const id = `${process.pid % 100_000}`;
    this.hub = `kpc${id}-hub`;
    try {
      ip(['netns', 'add', this.hub]);
      ip(['-n', this.hub, 'link', 'add', 'br0', 'type', 'bridge']);
      ip(['-n', this.hub, 'link', 'set', 'br0', 'up']);
      names.forEach((name, i) => {
        const node: NetnsNode = { name, ns: `kpc${id}-${name}`, address: `10.77.0.${i + 1}`, hubLink: `h${i}` };
        ip(['netns', 'add', node.ns]);
        // Made in the hub, one end moved into the node and renamed eth0 there.
        ip(['-n', this.hub, 'link', 'add', node.hubLink, 'type', 'veth', 'peer', 'name', `n${i}`]);
        ip(['-n', this.hub, 'link', 'set', `n${i}`, 'netns', node.ns]);
        ip(['-n', node.ns, 'link', 'set', `n${i}`, 'name', 'eth0']);
        ip(['-n', node.ns, 'addr', 'add', `${node.address}/24`, 'dev', 'eth0']);
        ip(['-n', node.ns, 'link', 'set', 'eth0', 'up']);
        ip(['-n', node.ns, 'link', 'set', 'lo', 'up']);
        ip(['-n', this.hub, 'link', 'set', node.hubLink, 'master', 'br0']);
        ip(['-n', this.hub, 'link', 'set', node.hubLink, 'up']);
        this.nodes.set(name, node);
      });
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  node(name: string): NetnsNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  /** `kp-coord args` inside the node's namespace. */
  kpCoord(name: string, args: readonly string[], env: NodeJS.ProcessEnv): CliProcess {
    const p = new CliProcess(['netns', 'exec', this.node(name).ns, process.execPath, CLI, ...args], env, 'ip');
    this.procs.push(p);
    return p;
  }

  cut(name: string): void {
    ip(['-n', this.hub, 'link', 'set', this.node(name).hubLink, 'down']);
  }

  restore(name: string): void {
    ip(['-n', this.hub, 'link', 'set', this.node(name).hubLink, 'up']);
  }

  /** Kill what runs in the lab and delete every namespace (idempotent). */
  destroy(): void {
    for (const p of this.procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    for (const n of this.nodes.values()) spawnSync('ip', ['netns', 'del', n.ns]);
    spawnSync('ip', ['netns', 'del', this.hub]);
    this.nodes.clear();
  }
}
