// @ts-check
// The submit page's form ↔ a sweep spec: reading the fields into a spec,
// filling them from one, and putting the API's field errors next to fields.
import { $, $$, closest } from './dom.js';

/**
 * @typedef {import('./api-types.js').SpecDraft} SpecDraft
 * @typedef {import('./api-types.js').SpecIssue} SpecIssue
 * @typedef {string | number | boolean} Scalar
 */

/** Spec field paths → their input. @type {Record<string, string>} */
const FIELD = {
  name: '#f-name',
  prompts: '#f-prompts',
  zip: '#f-zip',
  template: '#f-template',
  'seeds.start': '#f-seed-start',
  'seeds.count': '#f-seed-count',
  'params.width': '#f-width',
  'params.height': '#f-height',
  'params.steps': '#f-steps',
  'params.guidance': '#f-guidance',
  'params.sampler': '#f-sampler',
  'params.negative_prompt': '#f-negative',
  'params.batch': '#f-batch',
  backend: '#f-backend',
  model: '#f-model',
  priority: '#f-priority',
};

/**
 * An input, textarea or select of the form.
 * @param {string} sel
 * @returns {HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement}
 */
function control(sel) {
  const el = document.querySelector(sel);
  if (el instanceof HTMLInputElement || el instanceof HTMLTextAreaElement || el instanceof HTMLSelectElement) return el;
  throw new Error(`dashboard: no form control matches ${sel}`);
}
const valueOf = (/** @type {string} */ sel) => control(sel).value;
const val = (/** @type {string} */ sel) => valueOf(sel).trim();
const num = (/** @type {string} */ sel) => (val(sel) === '' ? undefined : Number(val(sel)));
/** @returns {Scalar} */
const scalar = (/** @type {string} */ v) => (/^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v === 'true' ? true : v === 'false' ? false : v);

/** The backend whose own fields (#onnx-fields) the form shows while it is chosen. */
const ONNX = 'onnx';

/**
 * Shows the onnx fields only for onnx sweeps, and says what an empty Model
 * field means for the chosen backend (its option's data-default-model).
 */
function syncBackend() {
  const backend = $('#f-backend', HTMLSelectElement);
  $('#onnx-fields').hidden = backend.value !== ONNX;
  const fallback = backend.selectedOptions[0]?.dataset.defaultModel;
  $('#f-model', HTMLInputElement).placeholder = fallback ?? 'backend default';
  $('#f-model-default').textContent = fallback ? `Empty: ${fallback}, the ${backend.value} backend’s default.` : 'Empty: the backend’s default model.';
}

/**
 * Wires the form's axis rows; `onChange` runs when a row is removed.
 * @param {() => void} onChange
 */
export function createSpecForm(onChange) {
  const form = $('#sweep-form', HTMLFormElement);
  const rowsBox = $('#axes-rows');
  const template = $('#axis-row', HTMLTemplateElement);

  /**
   * @param {string} [name]
   * @param {Scalar[]} [values]
   */
  function addAxis(name = '', values = []) {
    const frag = /** @type {DocumentFragment} */ (template.content.cloneNode(true));
    const row = $('.axis-row', HTMLElement, frag);
    const n = rowsBox.children.length + 1;
    const nameInput = $('.axis-name', HTMLInputElement, row);
    const valuesInput = $('.axis-values', HTMLTextAreaElement, row);
    nameInput.id = `axis-name-${n}`;
    valuesInput.id = `axis-values-${n}`;
    const [l1, l2] = $$('label', HTMLLabelElement, row);
    if (l1) l1.htmlFor = nameInput.id;
    if (l2) l2.htmlFor = valuesInput.id;
    $('.field-error', HTMLElement, row).id = `axis-error-${n}`;
    nameInput.setAttribute('aria-describedby', `axis-error-${n}`);
    valuesInput.setAttribute('aria-describedby', `axis-error-${n}`);
    $('.remove-axis', HTMLElement, row).setAttribute('aria-label', `Remove axis ${n}`);
    nameInput.value = name;
    valuesInput.value = values.map((v) => (v === '' ? '(none)' : String(v))).join('\n');
    rowsBox.append(row);
    return row;
  }
  $('#f-backend').addEventListener('change', syncBackend);
  syncBackend();
  $('#add-axis').addEventListener('click', () => {
    $('.axis-name', HTMLInputElement, addAxis()).focus();
  });
  rowsBox.addEventListener('click', (ev) => {
    const b = closest(ev, '.remove-axis');
    if (!b) return;
    b.closest('.axis-row')?.remove();
    onChange();
  });

  const axisRows = () => $$('.axis-row', HTMLElement, rowsBox);
  const axisName = (/** @type {HTMLElement} */ row) => $('.axis-name', HTMLInputElement, row).value.trim();

  /** @returns {SpecDraft} */
  function buildSpec() {
    /** @type {SpecDraft} */
    const spec = {};
    if (val('#f-name')) spec.name = val('#f-name');
    spec.prompts = valueOf('#f-prompts').split('\n').map((s) => s.trim()).filter(Boolean);
    /** @type {Record<string, Scalar[]>} */
    const axes = {};
    for (const row of axisRows()) {
      const name = axisName(row);
      const values = $('.axis-values', HTMLTextAreaElement, row).value.split('\n').map((s) => s.trim()).filter(Boolean).map((s) => (s === '(none)' ? '' : name.startsWith('params.') ? scalar(s) : s));
      if (!name && !values.length) continue;
      axes[name] = values;
    }
    if (Object.keys(axes).length) spec.axes = axes;
    const zip = val('#f-zip').split(',').map((s) => s.trim()).filter(Boolean);
    if (zip.length) spec.zip = zip;
    if (val('#f-template')) spec.template = val('#f-template');
    const list = val('#f-seed-list');
    spec.seeds = list ? list.split(/[\s,]+/).filter(Boolean).map(Number) : { start: num('#f-seed-start') ?? 0, count: num('#f-seed-count') };
    /** @type {Record<string, Scalar>} */
    const params = {};
    for (const [k, sel] of Object.entries({ width: '#f-width', height: '#f-height', steps: '#f-steps', guidance: '#f-guidance' })) {
      const n = num(sel);
      if (n !== undefined) params[k] = n;
    }
    for (const line of valueOf('#f-extra').split('\n')) {
      const m = /^\s*([^=\s]+)\s*=\s*(.*?)\s*$/.exec(line);
      if (m?.[1] !== undefined && m[2] !== undefined) params[m[1]] = scalar(m[2]);
    }
    spec.backend = valueOf('#f-backend');
    // The onnx fields count only while they are on show; a key=value line is overridden by a filled field.
    if (spec.backend === ONNX) {
      if (val('#f-sampler')) params.sampler = val('#f-sampler');
      if (val('#f-negative')) params.negative_prompt = val('#f-negative');
      const batch = num('#f-batch');
      if (batch !== undefined) params.batch = batch;
    }
    spec.params = params;
    if (val('#f-model')) spec.model = val('#f-model');
    const priority = num('#f-priority');
    if (priority !== undefined) spec.priority = priority;
    return spec;
  }

  /** @param {SpecDraft} spec */
  function fillForm(spec) {
    /** @param {string} sel @param {unknown} v */
    const set = (sel, v) => {
      control(sel).value = v === undefined || v === null ? '' : String(v);
    };
    set('#f-name', spec.name);
    set('#f-prompts', (spec.prompts || []).join('\n'));
    rowsBox.replaceChildren();
    for (const [name, values] of Object.entries(spec.axes || {})) addAxis(name, values);
    set('#f-zip', (spec.zip || []).join(', '));
    set('#f-template', spec.template);
    if (Array.isArray(spec.seeds)) {
      set('#f-seed-list', spec.seeds.join(', '));
    } else {
      set('#f-seed-list', '');
      set('#f-seed-start', spec.seeds?.start ?? 0);
      set('#f-seed-count', spec.seeds?.count);
    }
    const { width, height, steps, guidance, ...extra } = spec.params || {};
    const onnx = spec.backend === ONNX;
    // A sampler the select does not offer stays a key=value line, so the API's 400 names it.
    const sampler = onnx && [...$('#f-sampler', HTMLSelectElement).options].some((o) => o.value !== '' && o.value === extra.sampler) ? extra.sampler : undefined;
    const negative = onnx && typeof extra.negative_prompt === 'string' ? extra.negative_prompt : undefined;
    if (sampler !== undefined) delete extra.sampler;
    if (negative !== undefined) delete extra.negative_prompt;
    const batch = onnx && typeof extra.batch === 'number' ? extra.batch : undefined;
    if (batch !== undefined) delete extra.batch;
    set('#f-sampler', sampler);
    set('#f-negative', negative);
    set('#f-batch', batch);
    set('#f-width', width ?? 256);
    set('#f-height', height ?? 256);
    set('#f-steps', steps ?? 50);
    set('#f-guidance', guidance ?? 7.5);
    set('#f-extra', Object.entries(extra).map(([k, v]) => `${k}=${v}`).join('\n'));
    set('#f-backend', spec.backend || 'procedural');
    syncBackend();
    set('#f-model', spec.model);
    set('#f-priority', spec.priority ?? 0);
  }

  function clearErrors() {
    for (const el of $$('.field-error, #form-error', Element)) el.textContent = '';
    for (const el of $$('[aria-invalid="true"]', Element, form)) el.removeAttribute('aria-invalid');
  }

  /**
   * Puts each {path, message} from the API next to its field. Returns the first invalid control.
   * @param {SpecIssue[]} details
   * @returns {HTMLElement | null}
   */
  function showErrors(details) {
    /** @type {HTMLElement | null} */
    let first = null;
    /** @param {HTMLElement | null} input @param {HTMLElement} errEl @param {string} text */
    const put = (input, errEl, text) => {
      errEl.textContent = errEl.textContent ? `${errEl.textContent} ${text}` : text;
      if (input) {
        input.setAttribute('aria-invalid', 'true');
        first ??= input;
      }
    };
    for (const { path, message } of details) {
      const parts = path ? path.split('.') : [];
      const two = parts.slice(0, 2).join('.');
      const sel = FIELD[two] || (parts[0] !== undefined ? FIELD[parts[0]] : undefined);
      if (parts[0] === 'prompts' && parts[1] !== undefined) {
        put($('#f-prompts'), $('#f-prompts-error'), `Prompt ${Number(parts[1]) + 1}: ${message}.`);
        continue;
      }
      if (parts[0] === 'axes') {
        const row = axisRows().find((r) => axisName(r) === parts[1]);
        if (row) put($('.axis-values', HTMLElement, row), $('.field-error', HTMLElement, row), `${parts.length > 2 ? `Value ${Number(parts[2]) + 1}: ` : ''}${message}.`);
        else put(null, $('#axes-error'), `${parts[1] ? `Axis “${parts[1]}”: ` : ''}${message}.`);
        continue;
      }
      if (parts[0] === 'seeds' && !sel) {
        if (val('#f-seed-list')) put($('#f-seed-list'), $('#f-seed-list-error'), `${parts[1] !== undefined ? `Seed ${Number(parts[1]) + 1}: ` : ''}${message}.`);
        else put($('#f-seed-count'), $('#seeds-error'), `${message}.`);
        continue;
      }
      if (parts[0] === 'params' && !sel) {
        put($('#f-extra'), $('#f-extra-error'), `${parts[1] ? `${parts[1]}: ` : ''}${message}.`);
        continue;
      }
      if (sel) put($(sel), $(`${sel}-error`), `${message}.`);
      else put(null, $('#form-error'), `${path ? `${path}: ` : ''}${message}.`);
    }
    return first;
  }

  return { form, addAxis, buildSpec, fillForm, clearErrors, showErrors };
}
