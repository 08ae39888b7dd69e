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
 *
 * The two-replica variants (docker-compose.replicas.yml over the compose file,
 * the deploy/k8s-replicas overlay) are built by this test's own means
 * (compose-model.ts, kustomize-lite.ts) and, where the tools exist, by a
 * compose CLI and kubectl kustomize too, which must agree; then: both
 * coordinators read one NIGHTSHIFT_DATABASE_URL from the one secret that
 * PostgreSQL itself is set up with, every service's settings pass the config
 * schema, PostgreSQL's image is pinned, and the nodes' coordinator list,
 * parsed by the node's own parser, reaches every replica.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { connect } from '@nats-io/transport-node';
import { loadConfig } from '@nightshift/common';
import { freePort, natsServerBinary, startProcess, tempDir, waitFor } from '@nightshift/devfarm';
// The node's own parser (not on @nightshift/gpu-node's face): what a node would make of the list.
import { parseCoordinatorAddresses } from '../../services/gpu-node/src/coordinator-addresses.js';
import { composeByCli, composeByOwnMeans, readEnvFile, type ComposeModel } from './compose-model.js';
import { buildKustomization, byId, kustomizeCli, yamlDocs } from './kustomize-lite.js';

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
  return readdirSync(join(DEPLOY, 'k8s'))
    .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
    .flatMap((file) => yamlDocs(join(DEPLOY, 'k8s', file)).map((doc) => ({ file, doc })));
}

const BASE_WORKLOADS = ['DaemonSet/gpu-node', 'Deployment/indexer', 'StatefulSet/coordinator', 'StatefulSet/minio', 'StatefulSet/nats'];
const POSTGRES_IMAGE = /^postgres:\d+\.\d+(-[a-z0-9]+)?(@sha256:[0-9a-f]{64})?$/;

/** Every check on one built farm (deploy/k8s, or an overlay over it); returns the documents by kind for more. */
function checkK8sFarm(docs: { file: string; doc: Doc }[], expect: { workloads: string[]; coordinatorReplicas: number }) {
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
  assert.deepEqual(workloads.map(where).sort(), [...expect.workloads].sort());
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
        const port = c[probe]?.httpGet?.port ?? c[probe]?.tcpSocket?.port;
        if (port !== undefined) assert.ok(ports.has(port), `${where(w)}: ${probe} port ${port} is not a container port`);
      }
      for (const e of c.env ?? []) {
        if (String(e.name).startsWith('NIGHTSHIFT_')) assert.ok(KNOWN.has(e.name), `${where(w)}: ${e.name} is not a setting the services read`);
        const ref = e.valueFrom?.secretKeyRef;
        if (ref) assert.ok(secrets.get(ref.name)?.has(ref.key), `${where(w)}: secret ${ref.name}/${ref.key} is not defined`);
      }
      for (const from of c.envFrom ?? []) if (from.configMapRef) assert.ok(configMaps.has(from.configMapRef.name), `${where(w)}: ConfigMap ${from.configMapRef.name} is not defined`);
      // Our own image's services: the entry file exists, and the settings it starts with pass the config schema.
      if (/(^|\/)nightshift(:|$)/.test(c.image)) {
        assert.ok(existsSync(join(ROOT, c.args[0])), `${where(w)}: ${c.args[0]} does not exist`);
        assert.doesNotThrow(() => loadConfig(podEnv(c, of)), `${where(w)}: its settings fail the config schema`);
      }
    }
  }
  for (const svc of of('Service')) {
    const target = workloads.find((w) => Object.entries(svc.spec.selector as Record<string, string>).every(([k, v]) => w.spec.template.metadata.labels[k] === v));
    assert.ok(target, `${where(svc)}: its selector matches no pods`);
    const ports = new Set((target.spec.template.spec.containers as Doc[]).flatMap((c) => (c.ports ?? []).flatMap((p: Doc) => [p.name, p.containerPort])));
    for (const p of svc.spec.ports) assert.ok(ports.has(p.targetPort ?? p.port), `${where(svc)}: targetPort ${p.targetPort} is not a container port of ${where(target)}`);
  }
  for (const pdb of of('PodDisruptionBudget')) {
    const matchLabels = pdb.spec.selector.matchLabels as Record<string, string>;
    assert.ok(workloads.some((w) => Object.entries(matchLabels).every(([k, v]) => w.spec.template.metadata.labels[k] === v)), `${where(pdb)}: its selector matches no pods`);
  }

  const coordinator = workloads.find((w) => w.metadata.name === 'coordinator')!;
  assert.equal(coordinator.spec.replicas, expect.coordinatorReplicas, expect.coordinatorReplicas === 1 ? 'one coordinator per SQLite file' : 'coordinator replicas');
  assert.ok(coordinator.spec.volumeClaimTemplates.length >= 1, 'the coordinator keeps its state on a volume');
  assert.equal(coordinator.spec.template.spec.containers[0].readinessProbe?.httpGet?.path, '/readyz', 'a replica gets traffic (and nodes) only when ready');
  const gpu = workloads.find((w) => w.metadata.name === 'gpu-node')!;
  const gpuPod = gpu.spec.template.spec;
  assert.ok(Object.keys(gpuPod.nodeSelector).some((k) => k.startsWith('nvidia.com/')), 'gpu-node only on GPU machines');
  assert.ok(gpuPod.tolerations.some((t: Doc) => t.key === 'nvidia.com/gpu'), 'gpu-node tolerates the GPU taint');
  assert.equal(String(gpuPod.containers[0].resources.limits['nvidia.com/gpu']), '1');
  assert.ok(gpuPod.containers[0].env.some((e: Doc) => e.name === 'NIGHTSHIFT_NODE_ID' && e.valueFrom?.fieldRef), 'a stable node id per machine');

  // NATS requires a login from the nats-credentials secret, and the services that use NATS present that same login.
  const nats = workloads.find((w) => w.metadata.name === 'nats')!.spec.template.spec.containers[0] as Doc;
  const argAfter = (flag: string) => String(nats.args[nats.args.indexOf(flag) + 1] ?? '');
  const natsLogin = ['--user', '--pass'].map((flag) => {
    const ref = /^\$\(([A-Z_]+)\)$/.exec(argAfter(flag));
    assert.ok(ref, `StatefulSet/nats: ${flag} takes $(VAR) from the environment, got ${JSON.stringify(argAfter(flag))}`);
    const secret = secretRefOf(nats, ref[1]!);
    assert.ok(secret, `StatefulSet/nats: ${ref[1]} comes from a secret`);
    return secret;
  });
  for (const name of ['coordinator', 'indexer']) {
    const c = workloads.find((w) => w.metadata.name === name)!.spec.template.spec.containers[0] as Doc;
    assert.deepEqual([secretRefOf(c, 'NIGHTSHIFT_NATS_USER'), secretRefOf(c, 'NIGHTSHIFT_NATS_PASSWORD')], natsLogin, `${name}: the NATS login from the secret NATS itself uses`);
  }
  return { of, workloads };
}

const secretRefOf = (c: Doc, name: string) => (c.env as Doc[] | undefined)?.find((e) => e.name === name)?.valueFrom?.secretKeyRef as { name: string; key: string } | undefined;

/** A container's environment as the pod sees it: its ConfigMaps, then its env (secrets read from their stringData; fieldRefs left out). */
function podEnv(c: Doc, of: (kind: string) => Doc[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) Object.assign(env, of('ConfigMap').find((m) => m.metadata.name === from.configMapRef?.name)?.data);
  for (const e of (c.env ?? []) as Doc[]) {
    const ref = e.valueFrom?.secretKeyRef;
    if (ref) env[e.name] = of('Secret').find((s) => s.metadata.name === ref.name)?.stringData?.[ref.key];
    else if (e.value !== undefined) env[e.name] = String(e.value);
  }
  return env;
}

test('k8s: every document is well formed and its references resolve', () => {
  const docs = k8sDocs();
  const { of, workloads } = checkK8sFarm(docs, { workloads: BASE_WORKLOADS, coordinatorReplicas: 1 });
  // Nodes reach the one coordinator through its Service.
  assert.deepEqual(coordinatorServicesOfNodes(of, workloads).map((svc) => svc.metadata.name), ['coordinator']);
  // The base farm keeps the embedded SQLite store: no database URL anywhere.
  for (const w of workloads) for (const c of w.spec.template.spec.containers as Doc[]) assert.ok(!(c.env ?? []).some((e: Doc) => e.name === 'NIGHTSHIFT_DATABASE_URL'), `${w.metadata.name}: NIGHTSHIFT_DATABASE_URL in the one-coordinator farm`);

  const kustomization = parseYaml(readFileSync(join(DEPLOY, 'k8s/kustomization.yaml'), 'utf8')) as { resources: string[] };
  assert.deepEqual([...kustomization.resources].sort(), readdirSync(join(DEPLOY, 'k8s')).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort());
});

/** The gpu-nodes' NIGHTSHIFT_COORDINATOR, parsed by the node's own parser: each entry a Service in front of the coordinator's gRPC port. */
function coordinatorServicesOfNodes(of: (kind: string) => Doc[], workloads: Doc[]): Doc[] {
  const gpu = workloads.find((w) => w.metadata.name === 'gpu-node')!.spec.template.spec.containers[0] as Doc;
  const coordinator = workloads.find((w) => w.metadata.name === 'coordinator')!;
  const grpc = (coordinator.spec.template.spec.containers[0].ports as Doc[]).find((p) => p.name === 'grpc')!;
  const entries = parseCoordinatorAddresses(podEnv(gpu, of).NIGHTSHIFT_COORDINATOR ?? '');
  return entries.map((e) => {
    const svc = of('Service').find((s) => s.metadata.name === e.host);
    assert.ok(svc, `gpu-node: ${e.text} names no Service`);
    assert.ok(Object.entries(svc.spec.selector as Record<string, string>).every(([k, v]) => coordinator.spec.template.metadata.labels[k] === v), `gpu-node: ${e.text} is not in front of the coordinator`);
    const port = (svc.spec.ports as Doc[]).find((p) => p.port === e.port);
    assert.ok(port && [grpc.name, grpc.containerPort].includes(port.targetPort ?? port.port), `gpu-node: ${e.text} does not reach the coordinator's gRPC port`);
    return svc;
  });
}

const OVERLAY = join(DEPLOY, 'k8s-replicas');
const kustomize = kustomizeCli();

test('k8s-replicas: the overlay builds (own build, and kubectl kustomize where it exists, agreeing) into two coordinators on one PostgreSQL', () => {
  const built = buildKustomization(OVERLAY);
  // The own build of the base holds exactly the base's files, our image renamed as its kustomization says.
  const base = buildKustomization(join(DEPLOY, 'k8s'));
  assert.deepEqual([...byId(base).keys()].sort(), [...byId(k8sDocs().map((d) => d.doc)).keys()].sort());
  const images = (parseYaml(readFileSync(join(DEPLOY, 'k8s/kustomization.yaml'), 'utf8')) as { images: { newName: string; newTag: string }[] }).images[0]!;
  assert.equal((base.find((d) => d.kind === 'StatefulSet' && (d.metadata as Doc).name === 'coordinator') as Doc).spec.template.spec.containers[0].image, `${images.newName}:${images.newTag}`);
  if (kustomize) {
    assert.deepEqual(byId(built), byId(kustomize(OVERLAY)), 'kustomize-lite and kubectl kustomize disagree on the overlay');
    assert.deepEqual(byId(buildKustomization(join(DEPLOY, 'k8s'))), byId(kustomize(join(DEPLOY, 'k8s'))), 'kustomize-lite and kubectl kustomize disagree on the base');
  }
  const docs = built.map((doc) => ({ file: 'k8s-replicas (built)', doc: doc as Doc }));
  const { of, workloads } = checkK8sFarm(docs, { workloads: [...BASE_WORKLOADS, 'StatefulSet/postgres'], coordinatorReplicas: 2 });
  const secretValue = (ref: { name: string; key: string }) => of('Secret').find((s) => s.metadata.name === ref.name)?.stringData?.[ref.key] as string | undefined;

  // Both replicas (one pod template) read the URL from a secret, never from the manifest itself.
  const coordinator = workloads.find((w) => w.metadata.name === 'coordinator')!;
  const c = coordinator.spec.template.spec.containers[0] as Doc;
  const urlRef = secretRefOf(c, 'NIGHTSHIFT_DATABASE_URL');
  assert.ok(urlRef, 'the coordinator takes NIGHTSHIFT_DATABASE_URL from a secret');
  const config = loadConfig(podEnv(c, of));
  assert.equal(config.NIGHTSHIFT_DATABASE_URL, secretValue(urlRef));
  assert.ok(coordinator.spec.template.spec.affinity?.podAntiAffinity, 'replicas spread over machines where they can');

  // PostgreSQL: pinned image, data on a claim, ready only when it answers, set up with the login that URL carries.
  const postgres = workloads.find((w) => w.metadata.name === 'postgres')!;
  const pg = postgres.spec.template.spec.containers[0] as Doc;
  assert.match(pg.image, POSTGRES_IMAGE, 'PostgreSQL image pinned to a release');
  const dataMount = (pg.volumeMounts as Doc[]).find((m) => m.mountPath === '/var/lib/postgresql/data');
  assert.ok(dataMount && (postgres.spec.volumeClaimTemplates as Doc[]).some((t) => t.metadata.name === dataMount.name), 'PostgreSQL keeps its data on a PVC');
  assert.match(String((pg.env as Doc[]).find((e) => e.name === 'PGDATA')?.value), /^\/var\/lib\/postgresql\/data\/.+/, 'PGDATA below the mount (a fresh volume has lost+found)');
  assert.match(JSON.stringify(pg.readinessProbe?.exec?.command ?? []), /pg_isready/, 'PostgreSQL is ready when pg_isready says so');
  const url = new URL(config.NIGHTSHIFT_DATABASE_URL!);
  const login = ['POSTGRES_USER', 'POSTGRES_PASSWORD', 'POSTGRES_DB'].map((name) => {
    const ref = secretRefOf(pg, name);
    assert.ok(ref, `postgres: ${name} comes from a secret`);
    assert.equal(ref.name, urlRef.name, `postgres: ${name} from the secret the coordinators read their URL from`);
    return secretValue(ref);
  });
  assert.deepEqual([decodeURIComponent(url.username), decodeURIComponent(url.password), url.pathname.slice(1)], login, 'the URL carries the login PostgreSQL is set up with');
  const pgService = of('Service').find((s) => s.metadata.name === url.hostname);
  assert.ok(pgService, `the URL's host ${url.hostname} is no Service`);
  assert.deepEqual(pgService.spec.selector, postgres.spec.selector.matchLabels, `Service ${url.hostname} is not in front of PostgreSQL`);
  assert.ok((pgService.spec.ports as Doc[]).some((p) => p.port === Number(url.port || 5432) && (p.targetPort === 'postgres' || p.targetPort === 5432)), 'the URL\'s port reaches PostgreSQL');

  // Nodes dial every ready replica: a headless Service (one record per ready pod), through the node's own parser.
  const services = coordinatorServicesOfNodes(of, workloads);
  assert.ok(services.every((s) => s.spec.clusterIP === 'None' && !s.spec.publishNotReadyAddresses), 'the nodes\' coordinator name is a headless Service of ready replicas');

  // The overlay says what it is for, and what to use instead in production.
  const notes = ['kustomization.yaml', 'postgres.yaml'].map((f) => readFileSync(join(OVERLAY, f), 'utf8')).join('\n');
  for (const word of ['small farms', 'managed PostgreSQL', 'CloudNativePG', 'Zalando']) assert.ok(notes.includes(word), `the overlay's note mentions ${word}`);
  const k = parseYaml(readFileSync(join(OVERLAY, 'kustomization.yaml'), 'utf8')) as { resources: string[]; patches: { path: string }[] };
  assert.deepEqual(
    [...k.resources.filter((r) => r.endsWith('.yaml')), ...k.patches.map((p) => p.path)].sort(),
    readdirSync(OVERLAY).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort(),
    'every file of the overlay is used',
  );
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
  // One coordinator on its embedded SQLite file, the nodes pointed at it alone (the replicas are another file's).
  assert.equal(services.coordinator!.environment.NIGHTSHIFT_DATABASE_URL, undefined, 'the default farm keeps SQLite');
  assert.ok(!services.postgres && !services['coordinator-2'], 'no PostgreSQL or second replica in the default farm');
  assert.equal(services['gpu-node']!.environment.NIGHTSHIFT_COORDINATOR, '${NIGHTSHIFT_COORDINATOR:-coordinator:7070}');
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
  for (const file of ['docker-compose.yml', 'docker-compose.replicas.yml']) {
    for (const m of readFileSync(join(DEPLOY, file), 'utf8').matchAll(/\$\{([A-Z0-9_]+)/g)) if (m[1] !== 'NIGHTSHIFT_VERSION') assert.ok(documented.has(m[1]!), `${file}: ${m[1]} is missing from deploy/.env.example`);
  }
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

const REPLICA_FILES = [join(DEPLOY, 'docker-compose.yml'), join(DEPLOY, 'docker-compose.replicas.yml')];
const ENV_EXAMPLE = join(DEPLOY, '.env.example');
const isCoordinator = (s: ComposeModel[string]) => s.command?.[0] === 'services/coordinator/src/main.ts';
const isNode = (s: ComposeModel[string]) => s.command?.[0] === 'services/gpu-node/src/main.ts';

test('compose-replicas: two coordinators on one PostgreSQL, read here (and by the compose CLI where it exists, agreeing)', () => {
  const model = composeByOwnMeans(REPLICA_FILES, ENV_EXAMPLE, ['cpu']);
  if (compose) {
    assert.deepEqual(model, composeByCli(compose, REPLICA_FILES, ENV_EXAMPLE, ['cpu']), 'compose-model.ts and the compose CLI disagree on the replicas');
    assert.deepEqual(composeByOwnMeans(REPLICA_FILES.slice(0, 1), ENV_EXAMPLE, ['cpu']), composeByCli(compose, REPLICA_FILES.slice(0, 1), ENV_EXAMPLE, ['cpu']), 'compose-model.ts and the compose CLI disagree on the default farm');
  }
  const base = composeByOwnMeans(REPLICA_FILES.slice(0, 1), ENV_EXAMPLE, ['cpu']);
  assert.deepEqual(Object.keys(model).sort(), [...Object.keys(base), 'coordinator-2', 'postgres'].sort());
  // The services the default farm has are the same, but for the database, the nodes' list and what they wait for.
  for (const [name, s] of Object.entries(base)) {
    const { environment, dependsOn, ...rest } = model[name]!;
    const { environment: baseEnv, dependsOn: baseDeps, ...baseRest } = s;
    assert.deepEqual(rest, baseRest, `${name} changed beyond its settings and dependencies`);
    for (const [k, v] of Object.entries(baseEnv)) if (k !== 'NIGHTSHIFT_COORDINATOR') assert.equal(environment[k], v, `${name}: ${k} changed`);
    for (const [k, v] of Object.entries(baseDeps)) assert.equal(dependsOn[k], v, `${name}: no longer waits for ${k}`);
  }

  // PostgreSQL: a pinned official image (the file's default and .env.example's), a named volume, a pg_isready healthcheck, 5432 off the host.
  const pg = model.postgres!;
  assert.match(pg.image ?? '', POSTGRES_IMAGE, 'PostgreSQL image pinned to a release');
  const overrideText = readFileSync(REPLICA_FILES[1]!, 'utf8');
  assert.match(/\$\{POSTGRES_IMAGE:-([^}]+)\}/.exec(overrideText)?.[1] ?? '', POSTGRES_IMAGE, 'the file\'s default PostgreSQL image is pinned');
  assert.match(readEnvFile(ENV_EXAMPLE).POSTGRES_IMAGE ?? '', POSTGRES_IMAGE, '.env.example pins PostgreSQL');
  assert.deepEqual(pg.volumes, ['postgres-data:/var/lib/postgresql/data']);
  assert.deepEqual(pg.ports, [], 'PostgreSQL is not published on the host');
  const raw = parseYaml(overrideText, { merge: true }) as Doc;
  assert.match(JSON.stringify(raw.services.postgres.healthcheck.test), /pg_isready/);
  assert.ok(raw.volumes && 'postgres-data' in raw.volumes && 'coordinator-2-data' in raw.volumes, 'named volumes declared');

  // Two coordinators with identical settings, one URL carrying PostgreSQL's own login, each waiting for it to be healthy.
  const coordinators = Object.entries(model).filter(([, s]) => isCoordinator(s));
  assert.deepEqual(coordinators.map(([n]) => n).sort(), ['coordinator', 'coordinator-2']);
  const [[, first], [, second]] = coordinators as [[string, ComposeModel[string]], [string, ComposeModel[string]]];
  assert.deepEqual(second.environment, first.environment, 'both replicas run with the same settings');
  assert.equal(second.image, first.image);
  const config = loadConfig(first.environment);
  assert.ok(config.NIGHTSHIFT_DATABASE_URL, 'the replicas use PostgreSQL');
  const url = new URL(config.NIGHTSHIFT_DATABASE_URL);
  assert.deepEqual([url.hostname, url.port || '5432'], ['postgres', '5432'], 'the URL names the postgres service');
  assert.deepEqual([decodeURIComponent(url.username), decodeURIComponent(url.password), url.pathname.slice(1)], [pg.environment.POSTGRES_USER, pg.environment.POSTGRES_PASSWORD, pg.environment.POSTGRES_DB], 'the URL carries the login PostgreSQL is set up with');
  for (const [name, s] of coordinators) assert.equal(s.dependsOn.postgres, 'service_healthy', `${name} waits for PostgreSQL`);
  const dataOf = (s: ComposeModel[string]) => s.volumes.find((v) => v.endsWith(':/data'));
  assert.notEqual(dataOf(first), dataOf(second), 'each replica its own data folder');

  // No host port twice; every service of ours passes the config schema; the nodes' list, as the node parses it, is exactly the replicas.
  const published = Object.values(model).flatMap((s) => s.ports.map((p) => p.split(':').slice(0, -1).join(':')));
  assert.equal(new Set(published).size, published.length, `a host port published twice: ${published.join(', ')}`);
  for (const [name, s] of Object.entries(model)) {
    if (isCoordinator(s) || isNode(s)) assert.doesNotThrow(() => loadConfig(s.environment), `${name}: its settings fail the config schema`);
    for (const key of Object.keys(s.environment)) if (key.startsWith('NIGHTSHIFT_')) assert.ok(KNOWN.has(key), `${name}: ${key} is not a setting the services read`);
  }
  const nodes = Object.entries(model).filter(([, s]) => isNode(s));
  assert.deepEqual(nodes.map(([n]) => n).sort(), ['cpu-node', 'gpu-node']);
  for (const [name, s] of nodes) {
    const entries = parseCoordinatorAddresses(s.environment.NIGHTSHIFT_COORDINATOR ?? '');
    assert.deepEqual(entries.map((e) => e.host).sort(), coordinators.map(([n]) => n).sort(), `${name} is given every replica`);
    for (const e of entries) assert.ok(model[e.host]!.ports.some((p) => p.endsWith(`:${e.port}`)), `${name}: ${e.text} is not ${e.host}'s gRPC port`);
    for (const [c] of coordinators) assert.ok(c in s.dependsOn, `${name} starts after ${c}`);
  }

  // A missing database password is an error, not an empty password.
  const tmp = tempDir('nightshift-compose-replicas-');
  try {
    const withoutPassword = join(tmp.dir, 'no-postgres-password.env');
    writeFileSync(withoutPassword, readFileSync(ENV_EXAMPLE, 'utf8').replace(/^POSTGRES_PASSWORD=.*$/m, ''));
    assert.throws(() => composeByOwnMeans(REPLICA_FILES, withoutPassword), /set POSTGRES_PASSWORD in deploy\/\.env/);
    if (compose) {
      const [cmd, ...pre] = compose;
      const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('POSTGRES_')));
      const r = spawnSync(cmd!, [...pre, ...REPLICA_FILES.flatMap((f) => ['-f', f]), '--env-file', withoutPassword, 'config'], { encoding: 'utf8', env });
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /set POSTGRES_PASSWORD in deploy\/\.env/);
    }
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
