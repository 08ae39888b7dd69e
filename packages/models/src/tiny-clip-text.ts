/**
 * The text side of nightshift-tiny-clip: a whole-word vocabulary whose every
 * word is a concept vector (colour and shape words one-hot, unknown words a
 * little "other"), the text tower (gather, sum, normalise) and its tokenizer.
 */
import { COLOR_NAMES, SHAPES, type ColorName, type ShapeName } from '@nightshift/common';
import { attr, DataType, GraphBuilder } from './onnx-builder.js';
import { l2Normalise, OTHER, SHAPE_OFFSET, TINY_CLIP_DIM, TINY_CLIP_VERSION } from './tiny-clip-concepts.js';

export const MAX_TEXT_TOKENS = 77;

const SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]'] as const;

/** Extra words per colour. Grey is deliberately absent: it is the background. */
const COLOR_SYNONYMS: Partial<Record<ColorName, readonly string[]>> = {
  purple: ['violet'],
  cyan: ['turquoise'],
};

/** Words per shape, plurals and a few obvious synonyms. */
const SHAPE_WORDS: Record<ShapeName, readonly string[]> = {
  circle: ['circle', 'circles', 'round', 'disc', 'discs', 'disk', 'disks', 'dot', 'dots'],
  square: ['square', 'squares', 'box', 'boxes'],
  triangle: ['triangle', 'triangles', 'triangular'],
  stripes: ['stripes', 'stripe', 'striped', 'stripy', 'lines', 'bands'],
};

const PUNCTUATION = [',', '.', '!', '?', ';', ':', '-', "'", '"', '(', ')', '&', '/'] as const;

/** Weight of an unknown word on the "other" dimension: present, but never outweighing a concept word. */
const UNKNOWN_WORD_OTHER = 0.1;
const START_TOKEN_OTHER = 0.01;

export interface TextVocab {
  /** token → id, specials first. */
  vocab: Map<string, number>;
  /** One row per id: the concept vector that word contributes. */
  rows: Float32Array[];
}

export function buildTextVocab(): TextVocab {
  const vocab = new Map<string, number>();
  const rows: Float32Array[] = [];
  const add = (token: string, row: Float32Array) => {
    if (vocab.has(token)) throw new Error(`tiny-clip vocab: duplicate word ${token}`);
    vocab.set(token, rows.length);
    rows.push(row);
  };
  const oneHot = (dim: number) => {
    const r = new Float32Array(TINY_CLIP_DIM);
    r[dim] = 1;
    return r;
  };
  // [PAD] and [SEP] embed to zero, so padding needs no attention_mask.
  // [UNK] (every word the model does not know) goes to "other"; so does a
  // trace of [CLS], so that even "" gets a direction rather than a zero vector.
  for (const t of SPECIAL_TOKENS) {
    const r = new Float32Array(TINY_CLIP_DIM);
    if (t === '[UNK]') r[OTHER] = UNKNOWN_WORD_OTHER;
    if (t === '[CLS]') r[OTHER] = START_TOKEN_OTHER;
    add(t, r);
  }
  // Punctuation (split off by the pre-tokenizer) carries no meaning: zero rows.
  for (const p of PUNCTUATION) add(p, new Float32Array(TINY_CLIP_DIM));
  COLOR_NAMES.forEach((c, i) => {
    add(c, oneHot(i));
    for (const syn of COLOR_SYNONYMS[c] ?? []) add(syn, oneHot(i));
  });
  SHAPES.forEach((s, i) => {
    for (const w of SHAPE_WORDS[s]) add(w, oneHot(SHAPE_OFFSET + i));
  });
  return { vocab, rows };
}

/**
 * text_model.onnx: input_ids [batch, seq] → text_embeds [batch, D].
 * Gather each token's concept row, sum over the sequence, L2-normalise.
 * Only input_ids is declared (as in the public CLIP text exports);
 * transformers.js feeds a session just the inputs it declares.
 */
export function buildTextModel(tv: TextVocab): Uint8Array {
  const g = new GraphBuilder('nightshift_tiny_clip_text');
  const ids = g.input('input_ids', DataType.INT64, ['batch_size', 'sequence_length']);
  const table = g.floats('concept_table', [tv.rows.length, TINY_CLIP_DIM], concat(tv.rows));
  const perToken = g.op('Gather', [table, ids]); // [B, S, D]
  const summed = g.op('ReduceSum', [perToken, g.int64s('axis_seq', [1], [1])], { keepdims: attr.int(0) }); // [B, D]
  l2Normalise(g, summed, 'text_embeds');
  g.output('text_embeds', DataType.FLOAT, ['batch_size', TINY_CLIP_DIM]);
  return g.toBytes({ producerVersion: String(TINY_CLIP_VERSION), docString: 'nightshift-tiny-clip text tower (test model, not a real CLIP)' });
}

function concat(rows: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(rows.reduce((n, r) => n + r.length, 0));
  let o = 0;
  for (const r of rows) {
    out.set(r, o);
    o += r.length;
  }
  return out;
}

export function tokenizerJson(tv: TextVocab): object {
  const special = (t: string) => ({ id: t, ids: [tv.vocab.get(t)!], tokens: [t] });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((t) => ({
      id: tv.vocab.get(t)!,
      content: t,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: { type: 'Lowercase' },
    // Splits on whitespace and around punctuation ("red,blue" → red , blue).
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: { '[CLS]': special('[CLS]'), '[SEP]': special('[SEP]') },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    // WordPiece over whole words only: no "##" pieces are in the vocabulary, so
    // a word is either known as a whole or becomes [UNK].
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(tv.vocab),
    },
  };
}
