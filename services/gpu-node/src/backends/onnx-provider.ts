/**
 * Which onnxruntime execution providers this machine can really use. The
 * CUDA provider is a separate download (onnxruntime-node's install script,
 * README "CUDA"), and even when present it needs CUDA 12, cuDNN 9 and a
 * card; listSupportedBackends() cannot tell, so each configured provider
 * other than the CPU opens a one-node graph, and the ones that fail are
 * dropped with the reason. The node advertises the first usable one
 * (Capabilities.execution_provider: "cuda" or "cpu"), and the onnx backend
 * opens its models with the usable ones only, so a node configured
 * [cuda, cpu] without the CUDA build renders on the CPU instead of failing
 * every job.
 */
import * as ort from 'onnxruntime-node';
import { DataType, GraphBuilder } from '@nightshift/models';
import type { RenderDevice } from './backend.js';

export interface ProviderProbe {
  /** The configured providers that opened a session, in the configured order. */
  usable: string[];
  /** The ones that did not, with onnxruntime's reason. */
  failed: { provider: string; error: string }[];
}

let probeGraph: Uint8Array | undefined;

function graph(): Uint8Array {
  if (!probeGraph) {
    const g = new GraphBuilder('nightshift_provider_probe');
    const x = g.input('x', DataType.FLOAT, [1, 4]);
    g.op('Relu', [x], {}, 'y');
    g.output('y', DataType.FLOAT, [1, 4]);
    probeGraph = g.toBytes();
  }
  return probeGraph;
}

/** Opens (and runs) the probe graph on each configured provider alone; the CPU provider is always there. */
export async function probeProviders(configured: readonly string[]): Promise<ProviderProbe> {
  const out: ProviderProbe = { usable: [], failed: [] };
  for (const provider of configured) {
    if (provider === 'cpu') {
      out.usable.push(provider);
      continue;
    }
    let session: ort.InferenceSession | undefined;
    try {
      session = await ort.InferenceSession.create(graph(), { executionProviders: [provider], logSeverityLevel: 4 });
      await session.run({ x: new ort.Tensor('float32', Float32Array.of(-1, 0, 1, 2), [1, 4]) });
      out.usable.push(provider);
    } catch (err) {
      out.failed.push({ provider, error: err instanceof Error ? err.message : String(err) });
    } finally {
      await session?.release();
    }
  }
  return out;
}

/** Where a session whose first provider is this one runs: the CPU provider on the CPU, any other (cuda, tensorrt, dml…) on a GPU. */
export function providerDevice(provider: string | undefined): RenderDevice {
  return provider === undefined || provider === 'cpu' ? 'cpu' : 'gpu';
}

/** The providers models open with: the usable ones, or (none usable) the configured ones, so the load error names what failed. */
export function effectiveProviders(configured: readonly string[], probe: ProviderProbe): readonly string[] {
  return probe.usable.length > 0 ? probe.usable : configured;
}
