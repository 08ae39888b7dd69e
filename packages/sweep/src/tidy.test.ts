import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tidyPrompt, tidyPromptByRegex as regexTidy } from './tidy.js';

test('agrees with the old regex cleanup on every short string over a small alphabet', () => {
  const alphabet = ['a', ' ', ',', '\t', 'b'];
  let checked = 0;
  const walk = (s: string, depth: number) => {
    assert.equal(tidyPrompt(s), regexTidy(s), JSON.stringify(s));
    checked++;
    if (depth < 7) for (const ch of alphabet) walk(s + ch, depth + 1);
  };
  walk('', 0);
  assert.equal(checked, (5 ** 8 - 1) / 4);
});

test('agrees with the old cleanup on random longer strings', () => {
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const alphabet = ['cat', ' ', ',', '  ', '\n', ', ', 'x', '\u00a0'];
  for (let n = 0; n < 2_000; n++) {
    const s = Array.from({ length: Math.floor(rand() * 40) }, () => alphabet[Math.floor(rand() * alphabet.length)]).join('');
    assert.equal(tidyPrompt(s), regexTidy(s), JSON.stringify(s));
  }
});

test('examples', () => {
  assert.equal(tidyPrompt('an orchid, , watercolor,  '), 'an orchid, watercolor');
  assert.equal(tidyPrompt(' , a ,b ,, ,c'), 'a ,b,c');
});

test('a megabyte of spaces and commas finishes (linear; timed in bench/hostile.ts)', () => {
  const input = `a${' '.repeat(500_000)},${' , '.repeat(150_000)}b${' '.repeat(200_000)}`;
  assert.equal(tidyPrompt(input), 'a, b');
});
