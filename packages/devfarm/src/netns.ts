/**
 * Several "hosts" on one machine for network tests (test/netns): each host is
 * a network namespace with one veth link to a bridge that lives in a switch
 * namespace of its own. Nothing is added to the machine's own namespace: no
 * interface, no route, no address, so test traffic cannot leave the lab, and
 * two labs (two test runs) can even use the same addresses side by side.
 *
 * This process (in the machine's namespace) reaches a server inside the lab
 * through a forwarder: a loopback port here, piped over a Unix socket (those
 * are not per-namespace) to a small relay running inside the host.
 *
 * Needs root (or CAP_NET_ADMIN + CAP_SYS_ADMIN) and iproute2;
 * `netnsUnavailable()` says why not, for a clean skip.
 */
import { execFile as execFileCb } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startProcess, type ManagedProcess } from './process.js';
import { waitFor } from './ports.js';

const execFile = promisify(execFileCb);
const NAME_PREFIX = 'nsf';

async function ip(...args: string[]): Promise<string> {
  const { stdout } = await execFile('ip', args);
  return stdout;
}

/** Why this machine cannot build a lab (undefined when it can). Tries the real thing on a throwaway name. */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  try {
    await execFile('ip', ['-V']);
  } catch {
    return 'the ip command (iproute2) is missing: apt-get install iproute2';
  }
  const probe = `${NAME_PREFIX}${process.pid}-probe`;
  try {
    await ip('netns', 'add', probe);
  } catch (err) {
    return `cannot create network namespaces here (needs root / CAP_SYS_ADMIN): ${String((err as { stderr?: string }).stderr ?? err).trim()}`;
  }
  try {
    await ip('-n', probe, 'link', 'add', 'name', 'br0', 'type', 'bridge');
    await ip('-n', probe, 'link', 'add', 'name', 'va', 'type', 'veth', 'peer', 'name', 'vb');
    await execFile('ip', ['netns', 'exec', probe, 'true']);
    return undefined;
  } catch (err) {
    return `cannot build bridges, veth pairs or run programs in namespaces here: ${String((err as { stderr?: string }).stderr ?? err).trim()}`;
  } finally {
    await ip('netns', 'del', probe).catch(() => {});
  }
}

/** Namespaces of earlier runs that died before their cleanup (their process is gone). */
async function removeStale(): Promise<void> {
  const names = (await ip('netns', 'list').catch(() => '')).split('\n').map((l) => l.split(' ')[0] ?? '');
  for (const name of names) {
    const m = new RegExp(`^${NAME_PREFIX}(\\d+)-`).exec(name);
    if (!m || Number(m[1]) === process.pid) continue;
    let alive = true;
    try {
      process.kill(Number(m[1]), 0);
    } catch (err) {
      alive = (err as NodeJS.ErrnoException).code === 'EPERM';
    }
    if (!alive) await ip('netns', 'del', name).catch(() => {});
  }
}

// The relay inside a namespace: Unix socket in, TCP to the namespace's loopback out. Plain JS, so it starts in milliseconds.
const RELAY = `
const net = require('node:net');
const [sock, port] = process.argv.slice(1);
net.createServer((c) => {
  const t = net.connect(Number(port), '127.0.0.1');
  const kill = () => { c.destroy(); t.destroy(); };
  c.pipe(t).pipe(c);
  for (const s of [c, t]) { s.on('error', kill); s.on('close', kill); }
}).listen(sock, () => console.log('ready'));
process.on('SIGTERM', () => process.exit(0));
`;

export interface NetnsLab {
  /** The lab's /24, e.g. '10.250.0'. */
  readonly subnet: string;
  /** Adds a host with address `${subnet}.${octet}`. */
  addHost(name: string, octet: number): Promise<string>;
  /** Command prefix that runs a program on a host. */
  exec(name: string): string[];
  /** Pulls the host's cable: its switch port goes down (packets are dropped, nothing is told). */
  cut(name: string): Promise<void>;
  restore(name: string): Promise<void>;
  /** A loopback address of this process that reaches `port` on a host's loopback (servers bound to 0.0.0.0). */
  forward(name: string, port: number): Promise<{ host: string; port: number }>;
  /** Stops the relays, ends anything still running in the lab, deletes every namespace. Safe to call twice. */
  destroy(): Promise<void>;
}

export async function createNetnsLab(subnet = '10.250.0'): Promise<NetnsLab> {
  await removeStale();
  const id = `${NAME_PREFIX}${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
  const sw = `${id}-sw`;
  const hosts = new Map<string, string>();
  const relays: ManagedProcess[] = [];
  const listeners: Server[] = [];
  const sockets = new Set<Socket>();
  const sockDir = mkdtempSync(join(tmpdir(), 'nsf-'));
  let destroyed = false;
  const ns = (name: string) => {
    const n = hosts.get(name);
    if (!n) throw new Error(`no host ${name} in this lab`);
    return n;
  };
  // IPv6 off: no link-local chatter (DAD, router solicitations) on the lab's wires.
  const quiet = (n: string) => execFile('ip', ['netns', 'exec', n, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']).catch(() => {});

  await ip('netns', 'add', sw);
  await quiet(sw);
  await ip('-n', sw, 'link', 'add', 'name', 'br0', 'type', 'bridge');
  await ip('-n', sw, 'link', 'set', 'br0', 'up');

  const lab: NetnsLab = {
    subnet,
    async addHost(name, octet) {
      if (!/^[a-z0-9]{1,8}$/.test(name)) throw new Error(`host name ${name}: 1-8 lowercase letters or digits`);
      const n = `${id}-${name}`;
      await ip('netns', 'add', n);
      hosts.set(name, n);
      await quiet(n);
      const address = `${subnet}.${octet}`;
      // Both ends are created straight into their namespaces: the machine's own never sees them.
      await ip('-n', sw, 'link', 'add', 'name', `p-${name}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n);
      await ip('-n', sw, 'link', 'set', `p-${name}`, 'master', 'br0', 'up');
      await ip('-n', n, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
      await ip('-n', n, 'link', 'set', 'eth0', 'up');
      await ip('-n', n, 'link', 'set', 'lo', 'up');
      return address;
    },
    exec: (name) => ['ip', 'netns', 'exec', ns(name)],
    async cut(name) {
      ns(name);
      await ip('-n', sw, 'link', 'set', `p-${name}`, 'down');
    },
    async restore(name) {
      ns(name);
      await ip('-n', sw, 'link', 'set', `p-${name}`, 'up');
    },
    async forward(name, port) {
      const sock = join(sockDir, `${name}-${port}.sock`);
      const relay = startProcess(`relay-${name}-${port}`, process.execPath, ['-e', RELAY, sock, String(port)], { prefix: lab.exec(name) });
      relays.push(relay);
      await waitFor(`relay into ${name}:${port}`, () => {
        if (relay.child.exitCode !== null) throw new Error(relay.output());
        return existsSync(sock);
      }, 10_000, 20);
      const server = createServer((c) => {
        const u = createConnection(sock);
        sockets.add(c).add(u);
        const kill = () => {
          c.destroy();
          u.destroy();
          sockets.delete(c);
          sockets.delete(u);
        };
        c.pipe(u).pipe(c);
        for (const s of [c, u]) {
          s.on('error', kill);
          s.on('close', kill);
        }
      });
      listeners.push(server);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const addr = server.address();
      return { host: '127.0.0.1', port: typeof addr === 'object' && addr ? addr.port : 0 };
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      for (const s of sockets) s.destroy();
      await Promise.all(listeners.map((l) => new Promise((r) => l.close(r))));
      await Promise.all(relays.map((r) => r.stop('SIGTERM', 2_000)));
      for (const n of [...hosts.values(), sw]) {
        // Whatever still runs in our namespaces was started by this lab's user: end it by pid.
        const pids = (await ip('netns', 'pids', n).catch(() => '')).split('\n').filter(Boolean).map(Number);
        for (const pid of pids) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* already gone */
          }
        }
        await ip('netns', 'del', n).catch(() => {});
      }
      rmSync(sockDir, { recursive: true, force: true });
    },
  };
  return lab;
}
