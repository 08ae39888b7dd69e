/**
 * What a backend takes from a pulled registry model (RenderRequest.modelPath,
 * the model's folder in the node's cache, its files at the paths they were
 * added with): the onnx backend the folder itself (a diffusers layout), the
 * upscale backend the one `.onnx` file in it, an exec generator `{model_path}`.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { RenderFailure } from './backend.js';

async function filesIn(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name)).sort();
}

/** The upscaler in a pulled model: its only `.onnx` file (a single-file model, or a folder holding one). */
export async function upscalerFile(folder: string, label: string): Promise<string> {
  const onnx = (await filesIn(folder)).filter((f) => f.toLowerCase().endsWith('.onnx'));
  if (onnx.length === 1) return onnx[0]!;
  throw new RenderFailure(
    onnx.length === 0
      ? `registry model ${label} holds no .onnx file: the upscale backend needs a Real-ESRGAN-layout ONNX model`
      : `registry model ${label} holds ${onnx.length} .onnx files (${onnx.map((f) => path.relative(folder, f)).join(', ')}): the upscale backend needs exactly one`,
  );
}

/**
 * `{model_path}` for an exec generator: the file itself when the model is
 * one file (a .safetensors or .ckpt added alone), else the folder.
 */
export async function generatorModelPath(folder: string): Promise<string> {
  const files = await filesIn(folder);
  return files.length === 1 ? files[0]! : folder;
}
