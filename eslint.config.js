// Lint: the recommended JS and typescript-eslint rules on our TypeScript; type errors are tsc's job.
import { readdirSync } from 'node:fs';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Boundaries: a package or service is used through its face (src/mod.ts, the
// package's "." export), never through its files, and services never import
// one another (they talk over gRPC, HTTP and NATS). Tests and benchmarks under
// test/ and bench/ may still open a service's internals by path (white-box).
const SERVICES = readdirSync(new URL('./services/', import.meta.url), { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name);
const PAST_A_FACE = [
  { regex: '^(\\.\\./)+(.*/)?src(/|$)', message: "Another package's or service's files: import it by name (@nightshift/…), through its mod.ts." },
  { regex: '^@nightshift/[^/]+/.', message: 'Past the package face: import @nightshift/<name> itself and export what you need from its mod.ts.' },
];
const boundaries = (others = []) => ({
  'no-restricted-imports': [
    'error',
    {
      patterns: [
        ...PAST_A_FACE,
        ...(others.length ? [{ regex: `^@nightshift/(${others.join('|')})(/|$)`, message: 'Services do not import one another: share code through a package, talk over the wire.' }] : []),
      ],
    },
  ],
});

export default tseslint.config(
  { ignores: ['**/node_modules/**', 'packages/proto/src/gen/**', 'scratch/**', 'test-artifacts/**', '.nightshift/**', '.data/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    // Browser callbacks in tests and benchmarks run in the page, typed loosely (no DOM lib in tsconfig).
    files: ['test/**/*.ts', 'bench/**/*.ts', '**/*.test.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off', 'no-useless-assignment': 'off' },
  },
  { files: ['packages/*/src/**/*.ts'], rules: boundaries() },
  { files: ['test/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts'], rules: { 'no-restricted-imports': ['error', { patterns: [PAST_A_FACE[1]] }] } },
  ...SERVICES.map((name) => ({ files: [`services/${name}/src/**/*.ts`], rules: boundaries(SERVICES.filter((s) => s !== name)) })),
  {
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', URL: 'readonly' } },
  },
  {
    // The dashboard's browser modules (type-checked by static/tsconfig.json): browser globals, not Node's.
    files: ['services/coordinator/src/dashboard/static/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: {
        ...Object.fromEntries(
          ['window', 'document', 'location', 'localStorage', 'sessionStorage', 'performance', 'console', 'fetch', 'confirm', 'addEventListener', 'requestAnimationFrame', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'URL', 'URLSearchParams', 'AbortController', 'TextDecoderStream', 'CSS', 'Event', 'Node', 'Element', 'HTMLElement', 'HTMLAnchorElement', 'HTMLButtonElement', 'HTMLDialogElement', 'HTMLFormElement', 'HTMLImageElement', 'HTMLInputElement', 'HTMLLabelElement', 'HTMLSelectElement', 'HTMLTemplateElement', 'HTMLTextAreaElement'].map((g) => [g, 'readonly']),
        ),
        process: 'off',
        Buffer: 'off',
      },
    },
  },
);
