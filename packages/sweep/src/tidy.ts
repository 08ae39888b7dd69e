/**
 * Cleans a filled-in prompt: runs of separators left by empty axis values
 * collapse to one comma, separators at either end go, whitespace runs become
 * one space. One linear pass; the regexes this replaces were quadratic on
 * long whitespace runs (seconds of blocked event loop per submission).
 *
 * The result is byte-for-byte what those regexes gave, because the prompt
 * text is part of every render key: a different cleanup would make reruns
 * of old sweeps render everything again. tidy.test.ts checks the two agree.
 */
const SPACE = /\s/;

interface Run {
  text: string;
  /** A run of whitespace and commas holding at least one comma. */
  separator: boolean;
}

/** Splits text into maximal runs of [\s,] and runs of anything else. */
function runs(text: string): Run[] {
  const out: Run[] = [];
  let i = 0;
  while (i < text.length) {
    const sep = isSep(text[i]!);
    let j = i + 1;
    while (j < text.length && isSep(text[j]!) === sep) j++;
    const slice = text.slice(i, j);
    out.push({ text: slice, separator: sep && slice.includes(',') });
    i = j;
  }
  return out;
}

const isSep = (ch: string) => ch === ',' || SPACE.test(ch);

export function tidyPrompt(text: string): string {
  const parts = runs(text).map((r) => {
    if (!r.separator) return r;
    const last = r.text.lastIndexOf(',');
    // Two or more commas: everything up to the last comma goes, the whitespace after it stays.
    return r.text.indexOf(',') === last ? r : { text: r.text.slice(last), separator: true };
  });
  if (parts[0]?.separator) parts.shift();
  if (parts.at(-1)?.separator) parts.pop();
  return parts
    .map((p) => p.text)
    .join('')
    .replace(/\s+/g, ' ')
    .trim();
}

/**
 * The clean-up this module replaced, quadratic on long whitespace runs. Kept
 * only as the oracle that tidy.test.ts and bench/hostile.ts compare against.
 */
export function tidyPromptByRegex(text: string): string {
  return text
    .replace(/(\s*,\s*)+(?=,)/g, '')
    .replace(/^\s*,\s*|\s*,\s*$/g, '')
    .replace(/\s+/g, ' ')
    .trim();
}
