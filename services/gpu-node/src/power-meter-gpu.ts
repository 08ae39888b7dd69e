/**
 * Which NVIDIA GPUs the node renders on, as `nvidia-smi` names them: their
 * names, the driver, and the `--id` selection for later queries. The node
 * uses the GPUs CUDA_VISIBLE_DEVICES names when it is set (indices or
 * UUIDs; nvidia-smi counts in PCI bus order, so set CUDA_DEVICE_ORDER=PCI_BUS_ID
 * on a machine with mixed cards), else every GPU nvidia-smi lists.
 * Undefined without nvidia-smi, or when it answers nothing usable.
 */
import { execFile } from 'node:child_process';

export interface GpuIdentity {
  /** One name per GPU measured. */
  names: string[];
  driver: string;
  /** nvidia-smi arguments that select these GPUs ([] for all). */
  select: string[];
}

/** "0, NVIDIA GeForce RTX 4090, 550.54.14" lines → GPUs (malformed lines are skipped). */
export function parseGpuLines(text: string): { name: string; driver: string }[] {
  return text
    .split('\n')
    .map((line) => /^\s*\d+\s*,\s*(.+?)\s*,\s*([\w.-]+)\s*$/.exec(line))
    .filter((m): m is RegExpExecArray => !!m)
    .map((m) => ({ name: m[1]!, driver: m[2]! }));
}

/** The `--id` argument for CUDA_VISIBLE_DEVICES; null when it hides every GPU (the node renders on the CPU). */
export function gpuSelection(visible: string | undefined): string[] | null {
  if (visible === undefined) return [];
  const v = visible.trim();
  if (v === '' || v.startsWith('-')) return null;
  // Indices and UUIDs only; anything else is not for nvidia-smi to read (execFile, so never a shell either way).
  return /^[A-Za-z0-9_:,-]{1,512}$/.test(v) ? [`--id=${v}`] : [];
}

/** "NVIDIA H200", "2× NVIDIA H200" or "NVIDIA A10 + NVIDIA T4". */
export function gpuLabel(names: readonly string[]): string {
  const unique = [...new Set(names)];
  if (unique.length === 1 && names.length > 1) return `${names.length}× ${unique[0]}`;
  return unique.join(' + ');
}

export async function probeGpus(env: NodeJS.ProcessEnv = process.env, timeoutMs = 10_000): Promise<GpuIdentity | undefined> {
  const select = gpuSelection(env.CUDA_VISIBLE_DEVICES);
  if (!select) return undefined;
  const text = await new Promise<string | undefined>((resolve) =>
    execFile('nvidia-smi', ['--query-gpu=index,name,driver_version', '--format=csv,noheader,nounits', ...select], { env, timeout: timeoutMs, maxBuffer: 64 * 1024 }, (err, stdout) =>
      resolve(err ? undefined : stdout),
    ),
  );
  const gpus = text === undefined ? [] : parseGpuLines(text);
  if (!gpus.length) return undefined;
  return { names: gpus.map((g) => g.name), driver: gpus[0]!.driver, select };
}
