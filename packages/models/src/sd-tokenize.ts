/**
 * Prompt → input_ids for a diffusers model folder's tokenizer/, through
 * transformers.js's tokenizer (no hand-written BPE), with the conventions
 * diffusers' pipelines get from Python's tokenizers:
 * padding to model_max_length (77) with the folder's pad token, and
 * truncation that keeps the end-of-text token (transformers.js's own
 * truncation cuts it off, which would change what the text encoder pools).
 */
import path from 'node:path';
import { AutoTokenizer, type PreTrainedTokenizer } from '@huggingface/transformers';

export class SdTokenizer {
  private constructor(
    private readonly tokenizer: PreTrainedTokenizer,
    /** Tokens per prompt, start and end included (77 for SD). */
    readonly maxLength: number,
    readonly padId: number,
  ) {}

  /** Loads `dir` (a tokenizer/ folder) offline; absolute, so never read as a Hub id. */
  static async load(dir: string): Promise<SdTokenizer> {
    const tokenizer = await AutoTokenizer.from_pretrained(path.resolve(dir), { local_files_only: true });
    const maxLength = Number.isFinite(tokenizer.model_max_length) ? tokenizer.model_max_length : 77;
    const padId = tokenizer.pad_token_id ?? tokenizer.eos_token_id;
    if (padId === undefined || padId === null) throw new Error('the tokenizer has neither a pad nor an end-of-text token');
    return new SdTokenizer(tokenizer, maxLength, padId);
  }

  /** One row of ids per prompt, exactly maxLength each. */
  encodeRows(prompts: readonly string[]): number[][] {
    return prompts.map((p) => {
      const { input_ids } = this.tokenizer(p, { add_special_tokens: true, return_tensor: false }) as { input_ids: number[] };
      // Keep the first maxLength−1 and the last (end-of-text) token, as Python's truncation does.
      const ids = input_ids.length > this.maxLength ? [...input_ids.slice(0, this.maxLength - 1), input_ids[input_ids.length - 1]!] : input_ids;
      return ids.concat(new Array<number>(this.maxLength - ids.length).fill(this.padId));
    });
  }

  /** [prompts.length, maxLength] ids, row-major, ready for SdModel.encodeText. */
  encode(prompts: readonly string[]): Int32Array {
    return Int32Array.from(this.encodeRows(prompts).flat());
  }
}
