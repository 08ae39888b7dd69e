/**
 * deploy/ checked with what runs here: every Kubernetes document parsed and
 * cross-checked (kinds, names, selectors against pod labels, Secret and
 * ConfigMap references, volumes, probe ports, GPU scheduling), the compose
 * file parsed and, where a compose CLI exists, rendered by it; systemd units
 * through `systemd-analyze verify` where it exists. Every NIGHTSHIFT_*
 * variable that deploy/ sets must be one the services read. NATS requires a
 * login in compose and Kubernetes, the services that use it present that
 * login, 4222 is not published on the host, and the rendered compose command
 * run by a real nats-server refuses clients without it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { connect } from '@nats-io/transport-node';
import { freePort, natsServerBinary, startProcess, tempDir, waitFor } from '@nightshift/devfarm';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEPLOY = join(ROOT, 'deploy');
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');

/** Every NIGHTSHIFT_* name the code reads: config.ts and the indexer's option schema, plus direct env reads. */
function knownVariables(): Set<string> {
  const known = new Set<string>();
  for (const file of ['packages/common/src/config.ts', 'services/indexer/src/options.ts']) {
    if (!existsSync(join(ROOT, file))) continue;
    for (const m of read(file).matchAll(/^\s+(NIGHTSHIFT_[A-Z0-9_]+):/gm)) known.add(m[1]!);
  }
  const walk = (dir: string): string[] =>
    readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
  for (const top of ['packages', 'services']) {
    for (const pkg of readdirSync(join(ROOT, top))) {
      if (!existsSync(join(ROOT, top, pkg, 'src'))) continue;
      for (const f of walk(join(top, pkg, 'src'))) for (const m of read(f).matchAll(/env\.(NIGHTSHIFT_[A-Z0-9_]+)/g)) known.add(m[1]!);
    }
  }
  return known;
}
const KNOWN = knownVariables();

 
type Doc = Record<string, any>;

function k8sDocs(): { file: string; doc: Doc }[] {
  const out: { file: string; doc: Doc }[] = [];
  for (const file of readdirSync(join(DEPLOY, 'k8s')).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')) {
    for (const d of parseAllDocuments(readFileSync(join(DEPLOY, 'k8s', file), 'utf8'))) {
      assert.deepEqual(d.errors, [], `${file}: YAML errors`);
      const doc = d.toJS() as Doc | null;
      if (doc) out.push({ file, doc });
    }
  }
  return out;
}

test('k8s: every document is well formed and its references resolve', () => {
  const docs = k8sDocs();
  const of = (kind: string) => docs.filter((d) => d.doc.kind === kind).map((d) => d.doc);
  const where = (d: Doc) => `${d.kind}/${d.metadata?.name}`;
  for (const { file, doc } of docs) {
    assert.ok(typeof doc.apiVersion === 'string' && doc.apiVersion, `${file}: apiVersion`);
    assert.ok(typeof doc.kind === 'string' && doc.kind, `${file}: kind`);
    assert.match(doc.metadata?.name ?? '', /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, `${file}: metadata.name`);
    if (doc.kind !== 'Namespace') assert.equal(doc.metadata.namespace, 'nightshift', `${where(doc)}: namespace`);
  }
  const secrets = new Map(of('Secret').map((s) => [s.metadata.name as string, new Set(Object.keys({ ...s.data, ...s.stringData }))]));
  const configMaps = new Map(of('ConfigMap').map((c) => [c.metadata.name as string, c.data as Record<string, string>]));
  for (const [name, data] of configMaps) for (const key of Object.keys(data)) assert.ok(KNOWN.has(key), `ConfigMap ${name}: ${key} is not a setting the services read`);

  const workloads = [...of('Deployment'), ...of('StatefulSet'), ...of('DaemonSet')];
  assert.deepEqual(workloads.map(where).sort(), ['DaemonSet/gpu-node', 'Deployment/indexer', 'StatefulSet/coordinator', 'StatefulSet/minio', 'StatefulSet/nats']);
  const claims = new Set(of('PersistentVolumeClaim').map((p) => p.metadata.name as string));
  for (const w of workloads) {
    const labels = w.spec.template.metadata.labels as Record<string, string>;
    for (const [k, v] of Object.entries(w.spec.selector.matchLabels as Record<string, string>)) assert.equal(labels[k], v, `${where(w)}: selector ${k} does not match the pod labels`);
    const pod = w.spec.template.spec;
    const volumes = new Set([...(pod.volumes ?? []).map((v: Doc) => v.name), ...(w.spec.volumeClaimTemplates ?? []).map((v: Doc) => v.metadata.name)]);
    for (const v of pod.volumes ?? []) if (v.persistentVolumeClaim) assert.ok(claims.has(v.persistentVolumeClaim.claimName), `${where(w)}: PVC ${v.persistentVolumeClaim.claimName} is not defined`);
    for (const c of pod.containers as Doc[]) {
      assert.ok(c.image, `${where(w)}: image`);
      for (const m of c.volumeMounts ?? []) assert.ok(volumes.has(m.name), `${where(w)}: volume ${m.name} is not defined`);
      const ports = new Set((c.ports ?? []).flatMap((p: Doc) => [p.name, p.containerPort]));
      for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
        const port = c[probe]?.httpGet?.port;
        if (port !== undefined) assert.ok(ports.has(port), `${where(w)}: ${probe} port ${port} is not a container port`);
      }
      for (const e of c.env ?? []) {
        if (String(e.name).startsWith('NIGHTSHIFT_')) assert.ok(KNOWN.has(e.name), `${where(w)}: ${e.name} is not a setting the services read`);
        const ref = e.valueFrom?.secretKeyRef;
        if (ref) assert.ok(secrets.get(ref.name)?.has(ref.key), `${where(w)}: secret ${ref.name}/${ref.key} is not defined`);
      }
      for (const from of c.envFrom ?? []) if (from.configMapRef) assert.ok(configMaps.has(from.configMapRef.name), `${where(w)}: ConfigMap ${from.configMapRef.name} is not defined`);
      // Our own image's services: the entry file exists.
      if (c.image === 'nightshift') assert.ok(existsSync(join(ROOT, c.args[0])), `${where(w)}: ${c.args[0]} does not exist`);
    }
  }
  for (const svc of of('Service')) {
    const target = workloads.find((w) => Object.entries(svc.spec.selector as Record<string, string>).every(([k, v]) => w.spec.template.metadata.labels[k] === v));
    assert.ok(target, `${where(svc)}: its selector matches no pods`);
    const ports = new Set((target.spec.template.spec.containers as Doc[]).flatMap((c) => (c.ports ?? []).flatMap((p: Doc) => [p.name, p.containerPort])));
    for (const p of svc.spec.ports) assert.ok(ports.has(p.targetPort ?? p.port), `${where(svc)}: targetPort ${p.targetPort} is not a container port of ${where(target)}`);
  }

  const coordinator = workloads.find((w) => w.metadata.name === 'coordinator')!;
  assert.equal(coordinator.spec.replicas, 1, 'one coordinator per SQLite file');
  assert.ok(coordinator.spec.volumeClaimTemplates.length >= 1, 'the coordinator keeps its state on a volume');
  const gpu = workloads.find((w) => w.metadata.name === 'gpu-node')!;
  const gpuPod = gpu.spec.template.spec;
  assert.ok(Object.keys(gpuPod.nodeSelector).some((k) => k.startsWith('nvidia.com/')), 'gpu-node only on GPU machines');
  assert.ok(gpuPod.tolerations.some((t: Doc) => t.key === 'nvidia.com/gpu'), 'gpu-node tolerates the GPU taint');
  assert.equal(String(gpuPod.containers[0].resources.limits['nvidia.com/gpu']), '1');
  assert.ok(gpuPod.containers[0].env.some((e: Doc) => e.name === 'NIGHTSHIFT_NODE_ID' && e.valueFrom?.fieldRef), 'a stable node id per machine');

  // NATS requires a login from the nats-credentials secret, and the services that use NATS present that same login.
  const nats = workloads.find((w) => w.metadata.name === 'nats')!.spec.template.spec.containers[0] as Doc;
  const argAfter = (flag: string) => String(nats.args[nats.args.indexOf(flag) + 1] ?? '');
  const fromEnv = (c: Doc, name: string) => (c.env as Doc[] | undefined)?.find((e) => e.name === name)?.valueFrom?.secretKeyRef as { name: string; key: string } | undefined;
  const natsLogin = ['--user', '--pass'].map((flag) => {
    const ref = /^\$\(([A-Z_]+)\)$/.exec(argAfter(flag));
    assert.ok(ref, `StatefulSet/nats: ${flag} takes $(VAR) from the environment, got ${JSON.stringify(argAfter(flag))}`);
    const secret = fromEnv(nats, ref[1]!);
    assert.ok(secret, `StatefulSet/nats: ${ref[1]} comes from a secret`);
    return secret;
  });
  for (const name of ['coordinator', 'indexer']) {
    const c = workloads.find((w) => w.metadata.name === name)!.spec.template.spec.containers[0] as Doc;
    assert.deepEqual([fromEnv(c, 'NIGHTSHIFT_NATS_USER'), fromEnv(c, 'NIGHTSHIFT_NATS_PASSWORD')], natsLogin, `${name}: the NATS login from the secret NATS itself uses`);
  }

  const kustomization = parseYaml(readFileSync(join(DEPLOY, 'k8s/kustomization.yaml'), 'utf8')) as { resources: string[] };
  assert.deepEqual([...kustomization.resources].sort(), readdirSync(join(DEPLOY, 'k8s')).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort());
});

test('compose: the services, volumes and GPU reservation are there, and every variable is known', () => {
  const text = readFileSync(join(DEPLOY, 'docker-compose.yml'), 'utf8');
  const compose = parseYaml(text, { merge: true }) as Doc;
  const services = compose.services as Record<string, Doc>;
  for (const s of ['minio', 'nats', 'coordinator', 'indexer', 'gpu-node']) assert.ok(services[s], `service ${s}`);
  assert.ok(services.nats!.command.includes('-js') && services.nats!.volumes.some((v: string) => v.endsWith(':/data')), 'NATS with JetStream on a volume');
  // NATS requires the login from deploy/.env, every service that uses NATS presents it, and 4222 stays off the host.
  const natsCommand = services.nats!.command as string[];
  const natsArg = (flag: string) => natsCommand[natsCommand.indexOf(flag) + 1];
  assert.equal(natsArg('--user'), '${NIGHTSHIFT_NATS_USER:?set NIGHTSHIFT_NATS_USER in deploy/.env}', 'NATS requires a user');
  assert.equal(natsArg('--pass'), '${NIGHTSHIFT_NATS_PASSWORD:?set NIGHTSHIFT_NATS_PASSWORD in deploy/.env}', 'NATS requires a password');
  for (const [name, s] of Object.entries(services)) {
    const env = (s.environment ?? {}) as Record<string, string>;
    if (env.NIGHTSHIFT_NATS_URL) assert.deepEqual([env.NIGHTSHIFT_NATS_USER, env.NIGHTSHIFT_NATS_PASSWORD], [natsArg('--user'), natsArg('--pass')], `${name}: the NATS login`);
    for (const p of (s.ports ?? []) as string[]) assert.doesNotMatch(String(p), /(^|:)4222(\/tcp)?$/, `${name}: NATS's port is published on the host`);
  }
  assert.ok(services.coordinator!.environment.NIGHTSHIFT_NATS_URL && services.indexer!.environment.NIGHTSHIFT_NATS_URL, 'the coordinator and indexer use NATS');
  const devices = services['gpu-node']!.deploy.resources.reservations.devices as Doc[];
  assert.ok(devices.some((d) => d.driver === 'nvidia' && d.capabilities.includes('gpu')), 'gpu-node reserves an NVIDIA GPU');
  for (const [name, s] of Object.entries(services)) {
    for (const key of Object.keys(s.environment ?? {})) if (key.startsWith('NIGHTSHIFT_')) assert.ok(KNOWN.has(key), `${name}: ${key} is not a setting the services read`);
    if (s.build) {
      assert.ok(existsSync(join(DEPLOY, s.build.context, s.build.dockerfile)), `${name}: Dockerfile`);
      assert.ok(existsSync(join(ROOT, s.command[0])), `${name}: ${s.command[0]} does not exist`);
    }
  }
  // Every ${VAR} the file uses is documented in .env.example.
  const example = readFileSync(join(DEPLOY, '.env.example'), 'utf8');
  const documented = new Set([...example.matchAll(/^#?([A-Z0-9_]+)=/gm)].map((m) => m[1]!));
  for (const m of text.matchAll(/\$\{([A-Z0-9_]+)/g)) if (m[1] !== 'NIGHTSHIFT_VERSION') assert.ok(documented.has(m[1]!), `${m[1]} is missing from deploy/.env.example`);
  for (const key of documented) if (key.startsWith('NIGHTSHIFT_')) assert.ok(KNOWN.has(key), `.env.example: ${key} is not a setting the services read`);
  const dockerfile = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
  assert.match(dockerfile, /ONNXRUNTIME_NODE_INSTALL=skip/);
  assert.match(dockerfile, /npm ci/);
  assert.match(dockerfile, /"--import", "tsx"/);
});

/** `docker compose` (v2) or `docker-compose` (v1), whichever works here without an engine. */
function composeCli(): string[] | undefined {
  for (const cmd of [['docker', 'compose'], ['docker-compose']]) {
    if (spawnSync(cmd[0]!, [...cmd.slice(1), 'version'], { stdio: 'ignore' }).status === 0) return cmd;
  }
  return undefined;
}
const compose = composeCli();

test('compose: `config` renders it with the example settings', { skip: compose ? false : 'no docker compose / docker-compose CLI here' }, () => {
  const [cmd, ...pre] = compose!;
  const out = execFileSync(cmd!, [...pre, '-f', join(DEPLOY, 'docker-compose.yml'), '--env-file', join(DEPLOY, '.env.example'), '--profile', 'cpu', 'config'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const rendered = parseYaml(out) as Doc;
  assert.deepEqual(Object.keys(rendered.services).sort(), ['coordinator', 'cpu-node', 'gpu-node', 'indexer', 'minio', 'nats']);
  assert.equal(rendered.services.coordinator.environment.NIGHTSHIFT_NATS_URL, 'nats://nats:4222');
  // As rendered: NATS's login is the one the coordinator and indexer present, and nothing publishes 4222.
  const natsCommand = rendered.services.nats.command as string[];
  const login = ['--user', '--pass'].map((flag) => natsCommand[natsCommand.indexOf(flag) + 1]);
  assert.deepEqual(login, ['nightshift', 'CHANGE-ME']);
  for (const s of ['coordinator', 'indexer']) {
    const env = rendered.services[s].environment as Record<string, string>;
    assert.deepEqual([env.NIGHTSHIFT_NATS_USER, env.NIGHTSHIFT_NATS_PASSWORD], login, `${s}: the NATS login`);
  }
  for (const [name, s] of Object.entries(rendered.services as Record<string, Doc>)) {
    for (const p of (s.ports ?? []) as (string | Doc)[]) assert.notEqual(String(typeof p === 'string' ? p.split(':').pop() : p.target).replace('/tcp', ''), '4222', `${name} publishes 4222`);
  }
  // A missing secret is an error, not an empty token.
  const tmp = tempDir('nightshift-compose-');
  try {
    writeFileSync(join(tmp.dir, 'empty.env'), '');
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MINIO_') && !k.startsWith('NIGHTSHIFT_')));
    const bare = spawnSync(cmd!, [...pre, '-f', join(DEPLOY, 'docker-compose.yml'), '--env-file', join(tmp.dir, 'empty.env'), 'config'], { encoding: 'utf8', env });
    assert.notEqual(bare.status, 0);
    assert.match(bare.stderr, /set (MINIO_ROOT_USER|MINIO_ROOT_PASSWORD|NIGHTSHIFT_\w+) in deploy\/.env/);
  } finally {
    tmp.cleanup();
  }
});

function hasNatsServer(): boolean {
  try {
    natsServerBinary();
    return true;
  } catch {
    return false;
  }
}

test('compose: NATS started with the rendered command refuses clients without the services\' login', { skip: !compose ? 'no docker compose / docker-compose CLI here' : hasNatsServer() ? false : 'nats-server is not installed' }, async () => {
  const [cmd, ...pre] = compose!;
  const out = execFileSync(cmd!, [...pre, '-f', join(DEPLOY, 'docker-compose.yml'), '--env-file', join(DEPLOY, '.env.example'), 'config'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const rendered = parseYaml(out) as Doc;
  const env = rendered.services.coordinator.environment as Record<string, string>;
  // The image's command, run by the Debian binary here: its own store folder, a free loopback port, no monitor port.
  const args = [...(rendered.services.nats.command as string[])];
  const tmp = tempDir('nightshift-compose-nats-');
  const port = await freePort();
  args.splice(args.indexOf('-m'), 2);
  args[args.indexOf('-sd') + 1] = tmp.dir;
  const proc = startProcess('nats-server', natsServerBinary(), [...args, '-a', '127.0.0.1', '-p', String(port)]);
  const servers = `nats://127.0.0.1:${port}`;
  try {
    const nc = await waitFor('NATS with the services\' login', () => connect({ servers, user: env.NIGHTSHIFT_NATS_USER, pass: env.NIGHTSHIFT_NATS_PASSWORD }).catch(() => undefined), 10_000);
    await nc.close();
    await assert.rejects(connect({ servers, reconnect: false }), /authorization/i);
    await assert.rejects(connect({ servers, reconnect: false, user: env.NIGHTSHIFT_NATS_USER, pass: 'not-the-password' }), /authorization/i);
  } finally {
    await proc.stop();
    tmp.cleanup();
  }
});

const analyze = spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).status === 0;

test('systemd: units pass `systemd-analyze verify`, env examples name known settings', { skip: analyze ? false : 'systemd-analyze is not installed' }, () => {
  const tmp = tempDir('nightshift-units-');
  try {
    const units = readdirSync(join(DEPLOY, 'systemd')).filter((f) => f.endsWith('.service'));
    assert.deepEqual(units.sort(), ['nightshift-coordinator.service', 'nightshift-gpu-node@.service']);
    // A template is verified as an instance (GPU 0).
    const files = units.map((u) => {
      const target = join(tmp.dir, u.replace('@.service', '@0.service'));
      copyFileSync(join(DEPLOY, 'systemd', u), target);
      return target;
    });
    for (const f of files) {
      const r = spawnSync('systemd-analyze', ['verify', f], { encoding: 'utf8' });
      const complaints = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes('nightshift'));
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(complaints, [], `systemd-analyze verify ${f}`);
    }
    for (const unit of units) {
      const text = readFileSync(join(DEPLOY, 'systemd', unit), 'utf8');
      assert.match(text, /^Restart=always$/m);
      assert.match(text, /^EnvironmentFile=\/etc\/nightshift\//m);
      assert.match(text, /^NoNewPrivileges=yes$/m);
      for (const m of text.matchAll(/^Environment=(NIGHTSHIFT_[A-Z0-9_]+)=/gm)) assert.ok(KNOWN.has(m[1]!), `${unit}: ${m[1]}`);
    }
    for (const env of readdirSync(join(DEPLOY, 'systemd')).filter((f) => f.endsWith('.env.example'))) {
      for (const m of readFileSync(join(DEPLOY, 'systemd', env), 'utf8').matchAll(/^#?(NIGHTSHIFT_[A-Z0-9_]+)=/gm)) assert.ok(KNOWN.has(m[1]!), `${env}: ${m[1]}`);
    }
  } finally {
    tmp.cleanup();
  }
});
