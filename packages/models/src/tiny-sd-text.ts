/**
 * nightshift-tiny-sd's text_encoder/model.onnx, CLIP text model interface:
 * input_ids [batch, sequence] → last_hidden_state [batch, sequence, D] and
 * pooler_output [batch, D] (the state at the end-of-text token, found like
 * CLIP does: the position of the largest id).
 *
 * Inside: token + position embeddings, one pre-norm MLP block, a causal
 * "running mean" mixing step (each position sees the prompt up to itself, as
 * CLIP's causal attention does) and a final LayerNorm. Random fixed weights.
 */
import { attr, DataType } from './onnx-builder.js';
import { type ResolvedTinySdOptions, TINY_SD_HIDDEN, TINY_SD_VERSION } from './tiny-sd-config.js';
import { TinyGraph } from './tiny-sd-graph.js';
import { MAX_TOKENS } from './tiny-sd-tokenizer.js';

export function buildTextEncoder(o: ResolvedTinySdOptions, vocabSize: number): Uint8Array {
  const D = TINY_SD_HIDDEN;
  const m = new TinyGraph('nightshift_tiny_sd_text_encoder', o.seed, o.precision);
  const { g } = m;
  const ids = g.input('input_ids', o.inputIds === 'int32' ? DataType.INT32 : DataType.INT64, ['batch_size', 'sequence_length']);

  const tokens = g.op('Gather', [g.floats('token_embedding', [vocabSize, D], m.w.uniform('token_embedding', vocabSize * D, 1)), ids]);
  // Position rows 0 … S−1 of a 77-row table (S = sequence length, at most 77).
  const seqLen = g.op('Slice', [g.op('Shape', [ids]), g.int64s('one', [1], [1]), g.int64s('two', [1], [2])]); // [1]
  const zero = g.int64s('zero', [1], [0]);
  const positions = g.op('Slice', [g.floats('position_embedding', [MAX_TOKENS, D], m.w.uniform('position_embedding', MAX_TOKENS * D, 0.5)), zero, seqLen, zero]);
  let h = g.op('Add', [tokens, positions]); // [B, S, D]

  const mlp = m.linear('mlp.fc2', m.silu(m.linear('mlp.fc1', m.layerNorm('ln1', h, D), D, 4 * D)), 4 * D, D, 0.5);
  h = g.op('Add', [h, mlp]);

  // Causal mixing: the running mean of the states up to each position.
  const counts = new Float32Array(MAX_TOKENS).map((_, i) => i + 1);
  const count = g.op('Slice', [g.floats('position_count', [MAX_TOKENS, 1], counts), zero, seqLen, zero]); // [S, 1]
  const running = g.op('Div', [g.op('CumSum', [h, g.int64s('seq_axis', [], [1])]), count]);
  h = g.op('Add', [h, m.linear('mix', running, D, D, 0.5)]);
  const last = m.layerNorm('final_ln', h, D);
  m.floatOutput(last, 'last_hidden_state', ['batch_size', 'sequence_length', D]);

  // pooler_output: the state at argmax(input_ids), as CLIP picks its end-of-text token.
  const eos = g.op('ArgMax', [g.op('Cast', [ids], { to: attr.int(DataType.FLOAT) })], { axis: attr.int(1), keepdims: attr.int(1) }); // [B, 1]
  const index = g.op('Slice', [g.int64s('position_index', [MAX_TOKENS], Array.from({ length: MAX_TOKENS }, (_, i) => i)), zero, seqLen, zero]); // [S]
  const oneHot = g.op('Cast', [g.op('Equal', [index, eos])], { to: attr.int(DataType.FLOAT) }); // [B, S]
  const picked = g.op('Mul', [last, g.op('Unsqueeze', [oneHot, g.int64s('last_axis', [1], [2])])]);
  const pooled = g.op('ReduceSum', [picked, g.int64s('seq_axes', [1], [1])], { keepdims: attr.int(0) });
  m.floatOutput(pooled, 'pooler_output', ['batch_size', D]);

  return g.toBytes({ producerVersion: String(TINY_SD_VERSION), docString: 'nightshift-tiny-sd text encoder (test model with random fixed weights, not a real CLIP)' });
}
