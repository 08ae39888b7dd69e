/**
 * The farm behind the secure-farm tests: nats-server and s3rver as processes,
 * the coordinator (node tokens from an env list and a hashed tokens file) and
 * the gpu-nodes in this process with their logs captured, so a test can read
 * exactly what each one logged. With certificates it serves gRPC over mTLS
 * and the nodes connect with them; without, over plaintext, so the token,
 * metrics and log checks need no openssl.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger, loadConfig } from '@nightshift/common';
import { startCoordinator, type RunningCoordinator } from '@nightshift/coordinator';
import { startNode, type RunningNode } from '@nightshift/gpu-node';
import { startNatsServer, startS3Server, waitFor, type NatsServer, type S3Server, type TestCerts } from '@nightshift/devfarm';

export const TOKEN_A = 'tok-A-7f3e9c1d2b4a6e8f0a1b2c3d';
export const TOKEN_B = 'tok-B-0c9d8e7f6a5b4c3d2e1f0a9b';
export const TOKEN_ENV = 'tok-ENV-5a4b3c2d1e0f9a8b7c6d';
export const WRONG = 'tok-WRONG-1122334455667788';
const SECRETS = [TOKEN_A, TOKEN_B, TOKEN_ENV, WRONG];

/** A tokens-file line: the name and the token's SHA-256, never the token itself. */
export const tokenLine = (name: string, token: string) => `${name} sha256:${createHash('sha256').update(token).digest('hex')}\n`;

/** A logger destination that keeps every JSON line it is given. */
export class Captured {
  readonly lines: string[] = [];
  write(s: string) {
    this.lines.push(...s.split('\n').filter(Boolean));
  }
  has(msg: string, extra: (l: Record<string, unknown>) => boolean = () => true): boolean {
    return this.lines.some((line) => {
      const l = JSON.parse(line) as Record<string, unknown>;
      return l.msg === msg && extra(l);
    });
  }
}

/** The first capture group of `re` in the Prometheus text at `url`, as a number. */
export async function metric(url: string, re: RegExp): Promise<number | undefined> {
  const text = await (await fetch(url)).text();
  const m = re.exec(text);
  return m ? Number(m[1]) : undefined;
}

export interface SecureFarm {
  coordinator: RunningCoordinator;
  s3: S3Server;
  api: string;
  grpcAddress: string;
  tokensFile: string;
  coordLog: Captured;
  nodeLogs: Map<string, Captured>;
  nodes: Map<string, RunningNode>;
  /** Starts a gpu-node; `undefined` in `env` removes that key from the base environment. */
  node(id: string, env: Record<string, string | undefined>): Promise<RunningNode>;
  /** Submits a sweep over HTTP and returns its id. */
  submit(seeds: number, prompt: string): Promise<string>;
  sweepDone(id: string): Promise<{ status: string; counts: Record<string, number> }>;
  /** Fails when any token value appears in any captured log line. */
  assertNoTokenLogged(): void;
  stop(): Promise<void>;
}

export async function startSecureFarm(dir: string, certs?: TestCerts): Promise<SecureFarm> {
  const tokensFile = join(dir, 'node-tokens');
  writeFileSync(tokensFile, `# test enrolment\n${tokenLine('gpu-a', TOKEN_A)}${tokenLine('gpu-b', TOKEN_B)}`);
  const [nats, s3]: [NatsServer, S3Server] = await Promise.all([startNatsServer(join(dir, 'nats')), startS3Server(join(dir, 's3'))]);
  const coordLog = new Captured();
  const coordinator = await startCoordinator(
    loadConfig({
      NIGHTSHIFT_DATA_DIR: join(dir, 'coordinator'),
      NIGHTSHIFT_NATS_URL: nats.url,
      NIGHTSHIFT_S3_ENDPOINT: s3.endpoint,
      NIGHTSHIFT_HTTP_PORT: '0',
      NIGHTSHIFT_GRPC_PORT: '0',
      NIGHTSHIFT_HEARTBEAT_MS: '300',
      NIGHTSHIFT_NODE_TOKENS: `${TOKEN_ENV},unused-token`,
      NIGHTSHIFT_NODE_TOKENS_FILE: tokensFile,
      ...(certs && { NIGHTSHIFT_TLS_CERT: certs.serverCert, NIGHTSHIFT_TLS_KEY: certs.serverKey, NIGHTSHIFT_TLS_CLIENT_CA: certs.ca }),
    }),
    createLogger('coordinator', 'info', coordLog),
  ).catch(async (err: unknown) => {
    await Promise.all([nats.stop(), s3.stop()]);
    throw err;
  });
  const api = `http://127.0.0.1:${coordinator.httpPort}`;
  const grpcAddress = `127.0.0.1:${coordinator.grpcPort}`;
  const base: Record<string, string> = {
    NIGHTSHIFT_COORDINATOR: grpcAddress,
    NIGHTSHIFT_S3_ENDPOINT: s3.endpoint,
    NIGHTSHIFT_NODE_METRICS_PORT: '0',
    ...(certs && {
      NIGHTSHIFT_TLS_CA: certs.ca,
      // The address is an IP; the certificate is checked against this name (it holds both).
      NIGHTSHIFT_TLS_SERVER_NAME: 'localhost',
      NIGHTSHIFT_TLS_CLIENT_CERT: certs.clientCert,
      NIGHTSHIFT_TLS_CLIENT_KEY: certs.clientKey,
    }),
  };
  const nodeLogs = new Map<string, Captured>();
  const nodes = new Map<string, RunningNode>();

  return {
    coordinator,
    s3,
    api,
    grpcAddress,
    tokensFile,
    coordLog,
    nodeLogs,
    nodes,
    async node(id, env) {
      const log = new Captured();
      nodeLogs.set(id, log);
      const merged: Record<string, string> = { ...base, NIGHTSHIFT_NODE_ID: id, NIGHTSHIFT_DATA_DIR: join(dir, id) };
      for (const [k, v] of Object.entries(env)) if (v === undefined) delete merged[k];
      else merged[k] = v;
      const n = await startNode(loadConfig(merged), createLogger('gpu-node', 'info', log));
      nodes.set(id, n);
      return n;
    },
    async submit(seeds, prompt) {
      const res = await fetch(`${api}/api/sweeps`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompts: [prompt], seeds: { count: seeds }, params: { width: 64, height: 64, steps: 2 } }) });
      assert.equal(res.status, 201);
      return ((await res.json()) as { id: string }).id;
    },
    async sweepDone(id) {
      return waitFor(`sweep ${id} done`, async () => {
        const s = (await (await fetch(`${api}/api/sweeps/${id}`)).json()) as { status: string; counts: Record<string, number> };
        return s.status === 'done' ? s : undefined;
      }, 60_000, 100);
    },
    assertNoTokenLogged() {
      for (const [who, lines] of [['coordinator', coordLog.lines] as const, ...[...nodeLogs].map(([id, c]) => [id, c.lines] as const)]) {
        for (const secret of SECRETS) assert.ok(!lines.some((l) => l.includes(secret)), `${who} logged a token`);
      }
    },
    async stop() {
      for (const n of nodes.values()) await n.stop();
      await coordinator.stop();
      await Promise.all([nats.stop(), s3.stop()]);
    },
  };
}
