// @ts-check
// Page: the gallery — every rendered image a page at a time, text search and
// "more like this" (the indexer's), favorites, and "Likely favorites" (the
// indexer's taste model, or its aesthetic head while there are too few
// favorites; a text or image search takes precedence).
import { albumShareBar } from './album-share.js';
import { bestOfSweep, bestOverall, galleryPage as fetchGalleryPage, listSweeps, search, setFavorite } from './api.js';
import { $, closest, h, messageOf, showMsg, toast } from './dom.js';
import { openImage, setFavButton } from './image-dialog.js';
import { fileSrc } from './request.js';

/** @typedef {import('./api-types.js').GalleryImage} GalleryImage */

const PAGE_SIZE = 120;
/** The most hits the indexer's search returns. */
const SEARCH_MAX = 500;
/** The most images the taste model ranks in one answer. */
const BEST_MAX = 1000;

export function galleryPage() {
  const params = new URLSearchParams(location.search);
  const q = (params.get('q') || '').trim();
  const sweepFilter = params.get('sweep') || '';
  const favOnly = params.get('favorites') === 'true';
  const like = params.get('like') || '';
  const likely = params.get('sort') === 'likely';
  const page = Math.max(1, Number.parseInt(params.get('page') || '1', 10) || 1);
  const grid = $('#gallery-grid');
  const status = $('#gallery-status');
  const sweepSelect = $('#g-sweep', HTMLSelectElement);
  /** @type {Map<string, GalleryImage>} */
  const items = new Map();
  $('#g-q', HTMLInputElement).value = q;
  $('#g-fav', HTMLInputElement).checked = favOnly;
  $('#g-sort', HTMLSelectElement).value = likely ? 'likely' : '';
  const likeInput = $('#g-like', HTMLInputElement);
  likeInput.value = like;
  if (!like) likeInput.disabled = true; // keep ?like= out of the URL unless set
  $('#live').textContent = '';
  // An album or share link of what the filters pick: the favorites (of the sweep, if one is chosen) or a sweep.
  $('#gallery-form').after(albumShareBar(() => (favOnly ? { favorites: true, ...(sweepFilter ? { sweep: sweepFilter } : {}) } : sweepFilter ? { sweep: sweepFilter } : null), 'Choose a sweep or "Favorites only" (then Search) to make an album or a share link.'));

  // Sweep filter options load in the background; the grid does not wait for them.
  void listSweeps().then(
    ({ sweeps }) => {
      if (sweeps.some((s) => s.id === sweepFilter)) sweepSelect.querySelector(`option[value="${CSS.escape(sweepFilter)}"]`)?.remove();
      sweepSelect.append(...sweeps.filter((s) => s.kind !== 'upscale').map((s) => h('option', { value: s.id, text: `${s.name} (${s.id})` })));
      sweepSelect.value = sweepFilter;
    },
    () => {},
  );
  if (sweepFilter) sweepSelect.append(h('option', { value: sweepFilter, text: sweepFilter, selected: true }));

  /** This page's URL with some query parameters changed (null or '': removed). @param {Record<string, string | number | null>} changes */
  const urlWith = (changes) => {
    const u = new URLSearchParams(location.search);
    for (const [k, v] of Object.entries(changes)) {
      if (v === null || v === '') u.delete(k);
      else u.set(k, String(v));
    }
    const s = u.toString();
    return `/ui/gallery${s ? `?${s}` : ''}`;
  };

  /** What a card's score means: similarity for a search, else set by the ranking that scored it. */
  let scoreTitle = 'similarity';

  /** @param {GalleryImage & { score?: number }} it */
  function card(it) {
    items.set(it.renderKey, it);
    const fav = it.favorite === true;
    return h(
      'li',
      { class: 'card', dataset: { key: it.renderKey } },
      h('button', { type: 'button', class: 'thumb', title: it.prompt }, h('img', { src: fileSrc(it.thumbUrl), alt: `${it.prompt}, seed ${it.seed}`, loading: 'lazy', decoding: 'async', width: 256, height: 256 })),
      h('p', { class: 'cap', text: `${it.prompt} · seed ${it.seed}` }),
      h(
        'div',
        { class: 'bar2' },
        h('button', { type: 'button', class: 'fav', 'aria-pressed': String(fav), 'aria-label': 'Favorite', title: it.favorite === null ? 'Favorite (state unknown: the indexer did not answer)' : 'Favorite' }, fav ? '★' : '☆'),
        h('a', { class: 'like', href: urlWith({ like: it.renderKey, page: null }), text: 'More like this' }),
        typeof it.score === 'number' ? h('span', { class: 'score', title: scoreTitle, text: it.score.toFixed(3) }) : '',
      ),
    );
  }

  /**
   * @param {boolean} hasMore
   * @param {number | null} totalPages
   */
  function pager(hasMore, totalPages) {
    $('#pager').replaceChildren(
      page > 1 ? h('a', { class: 'button', href: urlWith({ page: page - 1 === 1 ? null : page - 1 }), rel: 'prev', text: '← Previous' }) : '',
      h('span', { text: totalPages ? `Page ${page} of ${totalPages}` : `Page ${page}` }),
      hasMore ? h('a', { class: 'button', href: urlWith({ page: page + 1 }), rel: 'next', text: 'Next →' }) : '',
    );
  }

  async function load() {
    try {
      /** @type {(GalleryImage & { score?: number })[]} */
      let list;
      if (q || like) {
        const k = Math.min(SEARCH_MAX, page * PAGE_SIZE);
        const sp = new URLSearchParams({ k: String(k) });
        if (q) sp.set('q', q);
        if (like) sp.set('image', like);
        if (sweepFilter) sp.set('sweep', sweepFilter);
        if (favOnly) sp.set('favorites', 'true');
        const data = await search(sp);
        list = data.results.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE);
        showMsg(status, list.length ? `Best matches ${(page - 1) * PAGE_SIZE + 1}–${(page - 1) * PAGE_SIZE + list.length}${q ? ` for “${q}”` : ''}${like ? ' similar to the chosen image' : ''}.` : `No matches${q ? ` for “${q}”` : ''}.`);
        pager(data.results.length === k && k < SEARCH_MAX, null);
      } else if (likely) {
        const k = Math.min(BEST_MAX, page * PAGE_SIZE);
        const data = sweepFilter ? await bestOfSweep(sweepFilter, k) : await bestOverall(k);
        const ranked = favOnly ? data.results.filter((r) => r.favorite) : data.results;
        list = ranked.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE);
        showMsg(status, !list.length ? 'No images yet.' : data.scoredBy === 'taste' ? `Likely favorites: learned from your ${data.model.positives} favorites, most likely first.` : `Likely favorites by the aesthetic head (${data.aesthetic.head}) until you star ${data.taste.needed - data.taste.favorites} more; best first.`);
        scoreTitle = data.scoredBy === 'taste' ? 'chance you would star it (taste model)' : 'aesthetic score (aesthetic head)';
        pager(data.results.length === k && k < BEST_MAX, null);
      } else {
        const sp = new URLSearchParams({ offset: String((page - 1) * PAGE_SIZE), limit: String(PAGE_SIZE) });
        if (sweepFilter) sp.set('sweep', sweepFilter);
        if (favOnly) sp.set('favorites', 'true');
        const data = await fetchGalleryPage(sp);
        list = data.images;
        const pages = Math.max(1, Math.ceil(data.total / PAGE_SIZE));
        showMsg(status, data.total ? `${data.total.toLocaleString()} image${data.total === 1 ? '' : 's'}${favOnly ? ' marked favorite' : ''}, newest first.${data.favorites !== 'ok' ? ` Favorites unknown: ${data.favorites}.` : ''}` : favOnly ? 'No favorites yet.' : 'No images yet.');
        pager(page < pages, pages);
      }
      grid.replaceChildren(...list.map(card));
      performance.mark('nightshift:gallery-rendered');
      document.body.dataset.ready = 'gallery';
    } catch (err) {
      showMsg(status, messageOf(err), true);
      document.body.dataset.ready = 'gallery';
    }
  }

  if (like) {
    const banner = $('#like-banner');
    banner.hidden = false;
    banner.append(h('img', { src: fileSrc(`/files/thumbs/${like}.webp`), alt: 'the chosen image' }), h('span', { text: 'Images like this one' }), h('a', { href: urlWith({ like: null, page: null }), text: 'Clear' }));
  }

  grid.addEventListener('click', async (ev) => {
    const li = closest(ev, '.card');
    const it = li && items.get(li.dataset.key ?? '');
    if (!li || !it) return;
    if (closest(ev, '.thumb')) {
      openImage(it.renderKey, it, (fav) => setFavButton(li.querySelector('.fav'), fav));
    } else if (closest(ev, '.fav')) {
      const btn = $('.fav', HTMLElement, li);
      const on = btn.getAttribute('aria-pressed') !== 'true';
      setFavButton(btn, on);
      try {
        await setFavorite(it.renderKey, on);
        it.favorite = on;
      } catch (err) {
        setFavButton(btn, !on);
        toast(messageOf(err), { error: true });
      }
    }
  });
  return load();
}
