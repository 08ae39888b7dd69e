/**
 * The tokenizer/ folder of nightshift-tiny-sd: CLIP's byte-level BPE
 * tokenizer in CLIP's own file format (the `tokenizer.json` transformers.js
 * reads, plus the slow tokenizer's vocab.json / merges.txt that diffusers
 * exports carry), with CLIP's byte alphabet and special tokens but no merges:
 * every word is spelled letter by letter ("red" → r e d</w>). That keeps the
 * vocabulary at 514 entries and the tokenizer code path the real one.
 */

export const BOS_TOKEN = '<|startoftext|>';
export const EOS_TOKEN = '<|endoftext|>';
export const MAX_TOKENS = 77;

/** GPT-2/CLIP's byte → printable character table, in CLIP's vocabulary order. */
function byteAlphabet(): string[] {
  const bytes: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bytes.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bytes.push(b);
  for (let b = 0xae; b <= 0xff; b++) bytes.push(b);
  const chars = bytes.map((b) => String.fromCharCode(b));
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bytes.includes(b)) {
      bytes.push(b);
      chars.push(String.fromCharCode(256 + n++));
    }
  }
  return chars;
}

/** token → id: the 256 bytes, the 256 bytes ending a word, then the two specials (as CLIP orders them). */
export function tinySdVocab(): Map<string, number> {
  const alphabet = byteAlphabet();
  const vocab = new Map<string, number>();
  for (const c of alphabet) vocab.set(c, vocab.size);
  for (const c of alphabet) vocab.set(`${c}</w>`, vocab.size);
  vocab.set(BOS_TOKEN, vocab.size);
  vocab.set(EOS_TOKEN, vocab.size);
  return vocab;
}

/** The files of tokenizer/, relative to it. */
export function tokenizerFiles(): Map<string, string> {
  const vocab = tinySdVocab();
  const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n';
  const special = (content: string) => ({
    id: vocab.get(content)!,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: content === BOS_TOKEN, // as in openai/clip-vit-large-patch14's tokenizer.json
    special: true,
  });
  const out = new Map<string, string>();
  out.set(
    'tokenizer.json',
    json({
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: [special(BOS_TOKEN), special(EOS_TOKEN)],
      normalizer: {
        type: 'Sequence',
        normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }],
      },
      pre_tokenizer: {
        type: 'Sequence',
        pretokenizers: [
          {
            type: 'Split',
            pattern: { Regex: "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+" },
            behavior: 'Removed',
            invert: true,
          },
          { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
        ],
      },
      post_processor: {
        type: 'RobertaProcessing',
        sep: [EOS_TOKEN, vocab.get(EOS_TOKEN)],
        cls: [BOS_TOKEN, vocab.get(BOS_TOKEN)],
        trim_offsets: false,
        add_prefix_space: false,
      },
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: EOS_TOKEN,
        continuing_subword_prefix: '',
        end_of_word_suffix: '</w>',
        fuse_unk: false,
        byte_fallback: false,
        vocab: Object.fromEntries(vocab),
        merges: [],
      },
    }),
  );
  out.set(
    'tokenizer_config.json',
    json({
      add_prefix_space: false,
      bos_token: BOS_TOKEN,
      clean_up_tokenization_spaces: true,
      do_lower_case: true,
      eos_token: EOS_TOKEN,
      errors: 'replace',
      model_max_length: MAX_TOKENS,
      pad_token: EOS_TOKEN, // SD 1.x pads with <|endoftext|>
      tokenizer_class: 'CLIPTokenizer',
      unk_token: EOS_TOKEN,
    }),
  );
  out.set('special_tokens_map.json', json({ bos_token: BOS_TOKEN, eos_token: EOS_TOKEN, pad_token: EOS_TOKEN, unk_token: EOS_TOKEN }));
  out.set('vocab.json', JSON.stringify(Object.fromEntries(vocab)) + '\n');
  out.set('merges.txt', '#version: 0.2\n');
  return out;
}
