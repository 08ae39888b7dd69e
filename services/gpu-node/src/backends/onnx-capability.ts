/**
 * What a node tells the coordinator about its onnx backend's hardware
 * (Capabilities.execution_provider): the execution provider its models
 * really open with, "cuda" or "cpu" (onnx-provider.ts probes them), or ""
 * for a node without the onnx backend. A configured provider that cannot be
 * used is logged once with onnxruntime's reason, so "I asked for CUDA but
 * render on the CPU" is visible at start and on the nodes page.
 */
import type { Logger } from '@nightshift/common';
import type { Backend } from './backend.js';
import { OnnxBackend } from './onnx.js';

export async function advertisedExecutionProvider(backends: ReadonlyMap<string, Backend>, log: Logger): Promise<string> {
  const onnx = [...backends.values()].find((b): b is OnnxBackend => b instanceof OnnxBackend);
  if (!onnx) return '';
  const probe = await onnx.providers();
  for (const f of probe.failed) {
    log.warn({ provider: f.provider, error: f.error, using: probe.usable }, `onnx: execution provider ${f.provider} is not usable here${f.provider === 'cuda' ? ' (onnxruntime-node needs its CUDA 12 binaries, CUDA 12 and cuDNN 9: see README "CUDA")' : ''}`);
  }
  return probe.usable[0] ?? '';
}
