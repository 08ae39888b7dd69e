// @ts-check
// The sweep page's "Best of this sweep" strip, filled when its button is
// pressed: the images the taste model (learned from favorites, in the
// indexer) thinks you would star. Below 10 favorites the indexer's aesthetic
// head ranks instead when one is configured, else the API answers 409; either
// way the note says how many more to star. Other failures are said in the note.
import { bestOfSweep } from './api.js';
import { $, h, messageOf } from './dom.js';
import { ApiError, fileSrc } from './request.js';

const K = 12;

/** Fills #best-strip for sweep `id`. */
export async function loadBestStrip(/** @type {string} */ id) {
  const note = $('#best-note');
  const strip = $('#best-strip');
  note.textContent = 'Scoring…';
  try {
    const page = await bestOfSweep(id, K);
    if (!page.results.length) {
      note.textContent = 'No indexed images in this sweep yet.';
      strip.replaceChildren();
      return;
    }
    if (page.scoredBy === 'taste') {
      const m = page.model;
      note.textContent = `Learned from ${m.positives} favorites${m.cvAuc === null ? '' : ` (cross-validated AUC ${m.cvAuc.toFixed(2)})`}; score = the chance you would star it.`;
    } else {
      const more = page.taste.needed - page.taste.favorites;
      note.textContent = `Scored by the aesthetic head (${page.aesthetic.head}) until you star ${more} more image${more === 1 ? '' : 's'}.`;
    }
    strip.replaceChildren(
      ...page.results.map((r) =>
        h(
          'a',
          { class: 'best-tile', href: fileSrc(r.url), title: `score ${r.score.toFixed(2)}${r.favorite ? ', starred' : ''}`, target: '_blank', rel: 'noopener' },
          h('img', { src: fileSrc(r.thumbUrl), alt: `suggested image, score ${r.score.toFixed(2)}`, loading: 'lazy', decoding: 'async', width: 128, height: 128 }),
          h('span', { class: 'best-score', text: `${r.favorite ? '★ ' : ''}${r.score.toFixed(2)}` }),
        ),
      ),
    );
  } catch (err) {
    if (err instanceof ApiError && err.status === 409) {
      const d = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (err.data) ?? {});
      const more = typeof d.favorites === 'number' && typeof d.needed === 'number' ? d.needed - d.favorites : null;
      note.textContent = more === null ? err.message : `Star ${more} more image${more === 1 ? '' : 's'} (in any sweep) and suggestions appear here.`;
    } else {
      note.textContent = messageOf(err);
    }
    strip.replaceChildren();
  }
}
