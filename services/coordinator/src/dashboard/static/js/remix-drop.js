// @ts-check
// The submit page's "remix an image" drop zone: a PNG dropped (or chosen)
// goes to POST /api/remix, and the spec read from its metadata is handed to
// the form to edit before submitting.
import { remixImage } from './api.js';
import { $, h, messageOf } from './dom.js';

/** @typedef {import('./api-types.js').RemixAnswer} RemixAnswer */

const SOURCES = { nightshift: 'Nightshift', a1111: 'AUTOMATIC1111', comfyui: 'ComfyUI', invokeai: 'InvokeAI' };

/**
 * Wires #remix; `onSpec` gets each remix read.
 * @param {(answer: RemixAnswer) => void} onSpec
 */
export function remixDrop(onSpec) {
  const zone = $('#remix');
  const input = $('#remix-file', HTMLInputElement);
  const result = $('#remix-result');

  /** @param {File} file */
  async function remix(file) {
    result.replaceChildren(h('p', { class: 'hint', text: `Reading ${file.name}…` }));
    try {
      // Some systems give a dropped file no type; sent as a PNG, the coordinator checks the bytes anyway.
      const answer = await remixImage(file.type === 'image/png' ? file : file.slice(0, file.size, 'image/png'));
      onSpec(answer);
      result.replaceChildren(
        h('p', { text: `Loaded ${file.name} (${SOURCES[answer.source] ?? answer.source} settings) into the form: change the seeds or add an axis, then submit.` }),
        ...(answer.notes.length ? [h('ul', { class: 'hint' }, answer.notes.map((n) => h('li', { text: n })))] : []),
        ...(answer.issues?.length ? [h('p', { class: 'field-error', text: 'Some settings are outside what a sweep allows: fix the marked fields.' })] : []),
      );
    } catch (err) {
      result.replaceChildren(h('p', { class: 'field-error', text: messageOf(err) }));
    }
  }

  zone.addEventListener('dragover', (ev) => {
    ev.preventDefault();
    zone.classList.add('dragging');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('dragging'));
  zone.addEventListener('drop', (ev) => {
    ev.preventDefault();
    zone.classList.remove('dragging');
    const file = ev.dataTransfer?.files[0];
    if (file) void remix(file);
  });
  input.addEventListener('change', () => {
    const file = input.files?.[0];
    if (file) void remix(file);
    input.value = '';
  });
}
