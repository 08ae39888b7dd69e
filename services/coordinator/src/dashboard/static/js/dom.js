// @ts-check
// DOM helpers shared by every page: typed element lookup, a tiny builder,
// toasts and status lines.

/**
 * @typedef {Node | string | number | false | null | undefined} Leaf
 * @typedef {Leaf | readonly (Leaf | readonly Leaf[])[]} Child
 * Children for h(): arrays (two levels deep) are flattened; false/null/undefined are skipped.
 */

/**
 * @typedef {Record<string, string | number | boolean | null | undefined | Record<string, string> | EventListener>} Attrs
 * h() attributes: `class`, `text` (textContent), `dataset` (an object),
 * `on<event>` (a listener); anything else becomes an attribute (true: present, false/null/undefined: absent).
 */

/**
 * The HTMLElement matching `sel`. A page without it is a page/script
 * mismatch: it throws.
 * @overload
 * @param {string} sel
 * @returns {HTMLElement}
 */
/**
 * The element matching `sel` under `root` (the document when not given),
 * checked to be a `type`; it throws when there is none.
 * @template {Element} T
 * @overload
 * @param {string} sel
 * @param {{ new (...args: never[]): T; prototype: T }} type
 * @param {ParentNode} [root]
 * @returns {T}
 */
/**
 * @param {string} sel
 * @param {{ new (...args: never[]): Element; prototype: Element }} [type]
 * @param {ParentNode} [root]
 * @returns {Element}
 */
export function $(sel, type = HTMLElement, root = document) {
  const el = root.querySelector(sel);
  if (!(el instanceof type)) throw new Error(`dashboard: no ${type.name} matches ${sel}`);
  return el;
}

/**
 * Every element matching `sel` under `root` (the document when not given)
 * that is a `type`.
 * @template {Element} T
 * @param {string} sel
 * @param {{ new (...args: never[]): T; prototype: T }} type
 * @param {ParentNode} [root]
 * @returns {T[]}
 */
export function $$(sel, type, root = document) {
  return [...root.querySelectorAll(sel)].filter(/** @returns {el is T} */ (el) => el instanceof type);
}

/** The closest ancestor-or-self of an event's target matching `sel`, if the target is an element. */
export function closest(/** @type {Event} */ ev, /** @type {string} */ sel) {
  const target = ev.target;
  if (!(target instanceof Element)) return null;
  const el = target.closest(sel);
  return el instanceof HTMLElement ? el : null;
}

export const enc = encodeURIComponent;

/** @param {number} ms */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Tiny DOM builder; text always goes in as text, never as HTML.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Attrs} [attrs]
 * @param {Child[]} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = String(v);
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'dataset' && typeof v === 'object') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(2)) if (c !== undefined && c !== null && c !== false) el.append(typeof c === 'number' ? String(c) : c);
  return el;
}

/**
 * Runs `fn` once calls have stopped for `ms`.
 * @template {unknown[]} A
 * @param {(...args: A) => unknown} fn
 * @param {number} ms
 * @returns {(...args: A) => void}
 */
export function debounce(fn, ms) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let t;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

/**
 * A message in the corner that goes away by itself.
 * @param {string} message
 * @param {{ error?: boolean; link?: { href: string; text: string } }} [options]
 */
export function toast(message, { error = false, link } = {}) {
  const box = $('#toasts');
  const el = h('div', { class: `toast${error ? ' error' : ''}` }, message, link ? [' ', h('a', { href: link.href, text: link.text })] : []);
  box.append(el);
  setTimeout(() => el.remove(), error ? 10_000 : 6_000);
}

/**
 * A page's status line.
 * @param {HTMLElement} el
 * @param {string} text
 */
export function showMsg(el, text, error = false) {
  el.textContent = text;
  el.classList.toggle('error', error);
}

/** The message of anything thrown. */
export const messageOf = (/** @type {unknown} */ err) => (err instanceof Error ? err.message : String(err));
