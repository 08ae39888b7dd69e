// @ts-check
// Page: submit a sweep from the form (live preview, errors by field) or as
// pasted YAML/JSON.
import { previewSpec, submitSweep } from './api.js';
import { $, $$, debounce, enc, h, messageOf } from './dom.js';
import { ApiError } from './request.js';
import { remixDrop } from './remix-drop.js';
import { createSpecForm } from './spec-form.js';

/**
 * @typedef {import('./api-types.js').SpecDraft} SpecDraft
 * @typedef {import('./api-types.js').SpecPreview} SpecPreview
 * @typedef {import('./api-types.js').SpecIssue} SpecIssue
 */

/** The field errors an API error carries, if any. */
const detailsOf = (/** @type {unknown} */ err) => (err instanceof ApiError ? err.data?.details : undefined);

export function submitPage() {
  const count = $('#preview-count');
  const samples = $('#preview-samples');
  const formError = $('#form-error');
  let touched = false;
  const { form, buildSpec, fillForm, clearErrors, showErrors } = createSpecForm(() => refresh());

  /**
   * @param {SpecPreview} p
   * @param {HTMLElement} [countEl]
   * @param {HTMLElement} [list]
   */
  function showPreview(p, countEl = count, list = samples) {
    countEl.textContent = `${p.jobs.toLocaleString()} job${p.jobs === 1 ? '' : 's'}`;
    countEl.append(h('span', { class: 'hint', text: ` — ${p.prompts.toLocaleString()} prompt${p.prompts === 1 ? '' : 's'} × ${p.seeds.toLocaleString()} seed${p.seeds === 1 ? '' : 's'}` }));
    list.replaceChildren(...p.samples.map((s) => h('li', { text: s.prompt || '(empty prompt)' })));
  }

  let seq = 0;
  const refresh = debounce(async () => {
    const spec = buildSpec();
    const mine = ++seq;
    if (!spec.prompts?.length) {
      clearErrors();
      count.textContent = 'Fill in a prompt to see the sweep.';
      samples.replaceChildren();
      return;
    }
    try {
      const p = await previewSpec({ spec });
      if (mine !== seq) return;
      clearErrors();
      showPreview(p);
    } catch (err) {
      if (mine !== seq) return;
      clearErrors();
      const details = detailsOf(err);
      count.textContent = details ? 'Fix the marked fields to see the sweep.' : messageOf(err);
      samples.replaceChildren();
      if (details && touched) showErrors(details);
    }
  }, 250);
  form.addEventListener('input', () => {
    touched = true;
    refresh();
  });

  /**
   * Submits and opens the new sweep's page; `onErrors` shows why not.
   * @param {SpecDraft} spec
   * @param {(err: unknown) => void} onErrors
   */
  async function submitSpec(spec, onErrors) {
    const btns = $$('button[type=submit]', HTMLButtonElement);
    btns.forEach((b) => (b.disabled = true));
    try {
      const res = await submitSweep(spec);
      location.href = `/ui/sweeps/${enc(res.id)}`;
    } catch (err) {
      onErrors(err);
    } finally {
      btns.forEach((b) => (b.disabled = false));
    }
  }

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    touched = true;
    clearErrors();
    void submitSpec(buildSpec(), (err) => {
      const details = detailsOf(err);
      if (details?.length) {
        formError.textContent = 'The sweep was not submitted: fix the marked fields.';
        (showErrors(details) || formError).focus();
      } else {
        formError.textContent = messageOf(err);
      }
    });
  });

  // Pasted YAML/JSON.
  const pasteBox = $('#paste-result');
  const specText = $('#spec-text', HTMLTextAreaElement);
  /** @returns {Promise<SpecPreview | null>} */
  async function checkPasted() {
    const text = specText.value;
    pasteBox.replaceChildren();
    if (!text.trim()) {
      pasteBox.append(h('p', { class: 'field-error', text: 'Paste a spec first.' }));
      return null;
    }
    try {
      const p = await previewSpec({ text });
      const c = h('p', { class: 'big' });
      const list = h('ol', { class: 'samples' });
      showPreview(p, c, list);
      pasteBox.append(c, list);
      return p;
    } catch (err) {
      pasteBox.append(
        h('p', { class: 'field-error', text: messageOf(err).split(':')[0] }),
        h('ul', { class: 'field-error' }, (detailsOf(err) || []).map((d) => h('li', {}, d.path ? h('code', { text: d.path }) : '', d.path ? ': ' : '', d.message))),
      );
      return null;
    }
  }
  $('#paste-check').addEventListener('click', checkPasted);
  $('#paste-load').addEventListener('click', async () => {
    const p = await checkPasted();
    if (!p) return;
    fillForm(p.input);
    refresh();
    $('#f-prompts').focus();
  });
  $('#paste-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const p = await checkPasted();
    if (p) void submitSpec(p.input, (err) => pasteBox.append(h('p', { class: 'field-error', text: messageOf(err) })));
  });

  // A dropped PNG's settings, to edit before submitting; what a sweep would refuse is marked at once.
  remixDrop((answer) => {
    // The image's seed as "first seed", so raising the count renders more seeds around it.
    const seeds = answer.spec.seeds;
    fillForm(Array.isArray(seeds) && seeds.length === 1 ? { ...answer.spec, seeds: { start: seeds[0], count: 1 } } : answer.spec);
    clearErrors();
    if (answer.issues?.length) {
      touched = true;
      showErrors(answer.issues);
    }
    refresh();
  });

  // "Render more seeds" elsewhere can hand a spec over to edit.
  const handed = sessionStorage.getItem('nightshift.draft');
  if (handed) {
    sessionStorage.removeItem('nightshift.draft');
    try {
      fillForm(/** @type {SpecDraft} */ (JSON.parse(handed)));
      refresh();
    } catch {
      /* ignore a broken draft */
    }
  }
  $('#live').textContent = '';
}
