/**
 * What a set of compose files starts, reduced to what deploy.test.ts checks
 * (environment, dependencies, published ports, volumes, image, command,
 * profiles), read two ways: by this file's own interpolation and override
 * merge (`-f a -f b`: maps merged, ports added, volumes merged by target,
 * anything else replaced), so the checks run where no compose CLI exists,
 * and from the CLI's own `config` where one does. The test compares both.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';

type Doc = Record<string, unknown>;

export interface ComposeService {
  image: string | undefined;
  command: string[] | undefined;
  environment: Record<string, string>;
  /** Service → condition (`service_started` for the list form). */
  dependsOn: Record<string, string>;
  /** `[ip:]published:target`, sorted. */
  ports: string[];
  /** `source:target` (a named volume, or a bind mount's absolute path), sorted. */
  volumes: string[];
  profiles: string[];
}
export type ComposeModel = Record<string, ComposeService>;

/** KEY=VALUE lines of an env file (comments and blank lines skipped). */
export function readEnvFile(file: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) vars[m[1]!] = m[2]!;
  }
  return vars;
}

/** Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}` in every string; `$$` stays escaped. */
export function interpolate(value: unknown, vars: Record<string, string>): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}/g, (all, name: string | undefined, colon: string, op: string, arg: string) => {
      if (!name) return all;
      const v = vars[name];
      const unset = v === undefined || (colon === ':' && v === '');
      if (op === '-') return unset ? arg : v!;
      if (op === '?' && unset) throw new Error(`Missing mandatory value for ${name}: ${arg}`);
      return v ?? '';
    });
  }
  if (Array.isArray(value)) return value.map((v) => interpolate(v, vars));
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, vars)]));
  return value;
}

const portOf = (p: unknown): string => {
  if (typeof p === 'object' && p !== null) {
    const o = p as Doc;
    return `${o.host_ip ? `${String(o.host_ip)}:` : ''}${String(o.published ?? '')}:${String(o.target)}`;
  }
  const parts = String(p).replace(/\/tcp$/, '').split(':');
  return parts.length === 1 ? `:${parts[0]!}` : parts.join(':');
};

const volumeOf = (v: unknown, projectDir: string): { source: string; target: string } => {
  if (typeof v === 'object' && v !== null) return { source: String((v as Doc).source), target: String((v as Doc).target) };
  const [source = '', target = ''] = String(v).split(':');
  return { source: source.startsWith('.') || isAbsolute(source) ? resolve(projectDir, source) : source, target };
};

const dependsOf = (d: unknown): Record<string, string> =>
  Array.isArray(d) ? Object.fromEntries(d.map((s) => [String(s), 'service_started'])) : Object.fromEntries(Object.entries((d ?? {}) as Record<string, Doc>).map(([s, c]) => [s, String(c.condition ?? 'service_started')]));

function model(services: Record<string, Doc>, projectDir: string, profiles: string[]): ComposeModel {
  const out: ComposeModel = {};
  for (const [name, s] of Object.entries(services)) {
    const own = (s.profiles ?? []) as string[];
    if (own.length && !own.some((p) => profiles.includes(p))) continue;
    out[name] = {
      image: s.image as string | undefined,
      command: s.command as string[] | undefined,
      environment: Object.fromEntries(Object.entries((s.environment ?? {}) as Record<string, unknown>).map(([k, v]) => [k, v === null || v === undefined ? '' : String(v)])),
      dependsOn: dependsOf(s.depends_on),
      ports: ((s.ports ?? []) as unknown[]).map(portOf).sort(),
      volumes: ((s.volumes ?? []) as unknown[]).map((v) => volumeOf(v, projectDir)).map((v) => `${v.source}:${v.target}`).sort(),
      profiles: [...own].sort(),
    };
  }
  return out;
}

/** One service of an override over the same service before it. */
function mergeService(base: Doc, over: Doc, projectDir: string): Doc {
  const out: Doc = { ...base, ...over };
  if (base.environment || over.environment) out.environment = { ...(base.environment as Doc), ...(over.environment as Doc) };
  if (base.depends_on || over.depends_on) out.depends_on = Object.fromEntries(Object.entries({ ...dependsOf(base.depends_on), ...dependsOf(over.depends_on) }).map(([s, c]) => [s, { condition: c }]));
  if (base.ports || over.ports) out.ports = [...new Set([...((base.ports ?? []) as unknown[]), ...((over.ports ?? []) as unknown[])].map(portOf))];
  if (base.volumes || over.volumes) {
    const byTarget = new Map<string, unknown>();
    for (const v of [...((base.volumes ?? []) as unknown[]), ...((over.volumes ?? []) as unknown[])]) byTarget.set(volumeOf(v, projectDir).target, v);
    out.volumes = [...byTarget.values()];
  }
  return out;
}

/** The files read, interpolated and merged here, as `compose -f … --env-file … --profile … config` would. */
export function composeByOwnMeans(files: string[], envFile: string, profiles: string[] = []): ComposeModel {
  const vars = readEnvFile(envFile);
  const projectDir = dirname(files[0]!);
  let services: Record<string, Doc> = {};
  for (const file of files) {
    const doc = interpolate(parseYaml(readFileSync(file, 'utf8'), { merge: true }), vars) as { services?: Record<string, Doc> };
    for (const [name, s] of Object.entries(doc.services ?? {})) services = { ...services, [name]: services[name] ? mergeService(services[name], s, projectDir) : s };
  }
  return model(services, projectDir, profiles);
}

/** The same, rendered by a compose CLI (`cli` = ['docker', 'compose'] or ['docker-compose']). */
export function composeByCli(cli: string[], files: string[], envFile: string, profiles: string[] = []): ComposeModel {
  const [cmd, ...pre] = cli;
  const args = [...pre, ...files.flatMap((f) => ['-f', f]), '--env-file', envFile, ...profiles.flatMap((p) => ['--profile', p]), 'config'];
  const out = execFileSync(cmd!, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return model((parseYaml(out) as { services: Record<string, Doc> }).services, dirname(files[0]!), profiles);
}
