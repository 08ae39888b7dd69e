/**
 * Builds a kustomization the way `kustomize build` does, for the subset
 * deploy/ uses, so the overlay is checked where no kustomize binary exists:
 * `resources` (files, and folders with their own kustomization), `patches`
 * by `path` (strategic merge, lists of named items merged by name),
 * `namespace` and `images`. Anything else in a kustomization is refused,
 * so a new feature cannot be silently ignored. Where `kubectl kustomize` (or
 * `kustomize`) exists, deploy.test.ts compares this build with it.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments, parse as parseYaml } from 'yaml';

export type Doc = Record<string, unknown>;

interface Kustomization {
  apiVersion?: string;
  kind?: string;
  namespace?: string;
  resources?: string[];
  patches?: { path: string }[];
  images?: { name: string; newName?: string; newTag?: string }[];
}
const KNOWN_FIELDS = new Set(['apiVersion', 'kind', 'namespace', 'resources', 'patches', 'images']);

/** Every document of a YAML file, empty ones left out; YAML errors throw naming the file. */
export function yamlDocs(file: string): Doc[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).flatMap((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
    const doc = d.toJS() as Doc | null;
    return doc ? [doc] : [];
  });
}

const isObject = (v: unknown): v is Doc => typeof v === 'object' && v !== null && !Array.isArray(v);
const named = (v: unknown): v is Doc & { name: string } => isObject(v) && typeof v.name === 'string';

/** Strategic merge for what our patches do: maps merged, null deletes, lists of named items merged by name, other lists replaced. */
export function strategicMerge(base: unknown, patch: unknown): unknown {
  if (Array.isArray(patch)) {
    if (!Array.isArray(base) || !patch.every(named) || !base.every(named)) return patch;
    const out = base.map((item) => {
      const p = patch.find((q) => q.name === item.name);
      return p ? strategicMerge(item, p) : item;
    });
    for (const p of patch) if (!base.some((item) => item.name === p.name)) out.push(p);
    return out;
  }
  if (!isObject(patch) || !isObject(base)) return patch;
  const out: Doc = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$')) throw new Error(`kustomize-lite: patch directive ${k} is not supported`);
    if (v === null) delete out[k];
    else out[k] = k in base ? strategicMerge(base[k], v) : v;
  }
  return out;
}

const idOf = (d: Doc) => `${String(d.kind)}/${String((d.metadata as Doc | undefined)?.name)}`;

/** The documents `kustomize build dir` would print (in resource order). */
export function buildKustomization(dir: string): Doc[] {
  const k = parseYaml(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as Kustomization;
  for (const key of Object.keys(k)) if (!KNOWN_FIELDS.has(key)) throw new Error(`kustomize-lite: ${dir}/kustomization.yaml uses ${key}, which this build does not do`);
  let docs: Doc[] = [];
  for (const r of k.resources ?? []) {
    const path = resolve(dir, r);
    docs.push(...(statSync(path).isDirectory() ? buildKustomization(path) : yamlDocs(path)));
  }
  const seen = new Set<string>();
  for (const d of docs) {
    if (seen.has(idOf(d))) throw new Error(`kustomize-lite: ${idOf(d)} is defined twice under ${dir}`);
    seen.add(idOf(d));
  }
  for (const { path } of k.patches ?? []) {
    for (const patch of yamlDocs(join(dir, path))) {
      const i = docs.findIndex((d) => idOf(d) === idOf(patch));
      if (i < 0) throw new Error(`kustomize-lite: ${path} patches ${idOf(patch)}, which no resource defines`);
      docs[i] = strategicMerge(docs[i], patch) as Doc;
    }
  }
  if (k.namespace) docs = docs.map((d) => (d.kind === 'Namespace' ? d : { ...d, metadata: { ...(d.metadata as Doc), namespace: k.namespace } }));
  for (const image of k.images ?? []) {
    const replace = (c: Doc) => {
      const [name, tag] = String(c.image).split(':');
      if (name !== image.name) return c;
      return { ...c, image: `${image.newName ?? name}${image.newTag ?? tag ? `:${image.newTag ?? tag}` : ''}` };
    };
    docs = docs.map((d) => {
      const pod = ((d.spec as Doc | undefined)?.template as Doc | undefined)?.spec as Doc | undefined;
      if (!pod) return d;
      const spec = { ...pod, containers: (pod.containers as Doc[]).map(replace), ...(pod.initContainers ? { initContainers: (pod.initContainers as Doc[]).map(replace) } : {}) };
      return { ...d, spec: { ...(d.spec as Doc), template: { ...((d.spec as Doc).template as Doc), spec } } };
    });
  }
  return docs;
}

/** `kubectl kustomize` or `kustomize build`, whichever runs here; undefined when neither does. */
export function kustomizeCli(): ((dir: string) => Doc[]) | undefined {
  for (const [cmd, ...pre] of [['kubectl', 'kustomize'], ['kustomize', 'build']] as const) {
    if (spawnSync(cmd, [...pre, '--help'], { stdio: 'ignore' }).status !== 0) continue;
    return (dir) => {
      const r = spawnSync(cmd, [...pre, dir], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${cmd} ${pre.join(' ')} ${dir}: ${r.stderr}`);
      return parseAllDocuments(r.stdout).flatMap((d) => {
        const doc = d.toJS() as Doc | null;
        return doc ? [doc] : [];
      });
    };
  }
  return undefined;
}

/** Sorted keys and named lists sorted by name: two builds compare equal when they mean the same. */
export function canonical(v: unknown): unknown {
  if (Array.isArray(v)) {
    const items = v.map(canonical);
    return items.every(named) ? [...items].sort((a, b) => a.name.localeCompare(b.name)) : items;
  }
  if (!isObject(v)) return v;
  return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k])]));
}

/** The documents keyed kind/name, in canonical form. */
export function byId(docs: Doc[]): Map<string, unknown> {
  return new Map(docs.map((d) => [idOf(d), canonical(d)]));
}
