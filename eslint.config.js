// Flat config: typescript-eslint's recommended rules on the TypeScript sources and tests, and on
// the browser editor's plain ES modules; generated and third-party files are not ours to lint.
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';

// The layers, bottom first: a file imports its own layer and those below it, never one above.
// Sample generation sits with the formats (the families write their sample files through it).
const LAYERS = [
  ['src/errors.ts', 'src/file-identity.ts', 'src/file-read.ts'],
  ['src/tensor', 'src/safetensors', 'src/gguf'],
  ['src/adapter'],
  ['src/formats', 'src/samples'],
  ['src/checkpoint'],
  ['src/lora'],
  ['src/report'],
  ['nodes'],
  ['server'],
  ['src/cli'],
];
// The graph engine knows nothing of LoRAs: it rests on the bottom two layers, and nodes and above use it.
const GRAPH = 'src/graph';
const GRAPH_RESTS_ON = 2;
const GRAPH_USED_FROM = LAYERS.findIndex((l) => l.includes('nodes'));

const above = (i) => LAYERS.slice(i + 1).flat();
const layerZones = LAYERS.flatMap((layer, i) =>
  layer.map((target) => ({
    target,
    from: i < GRAPH_USED_FROM ? [...above(i), GRAPH] : above(i),
    message: 'imports point down the layers (eslint.config.js LAYERS); move the shared piece down instead',
  })),
).filter((z) => z.from.length > 0);
const graphZone = { target: GRAPH, from: LAYERS.slice(GRAPH_RESTS_ON).flat(), message: 'src/graph is domain-free: it may import only src/errors.ts, src/file-identity.ts, tensor, safetensors and gguf' };

export default defineConfig(
  {
    ignores: ['node_modules/', 'ui/vendor/', '**/*.min.js', 'out/', 'tmp/', 'samples/', 'bench/data/', 'test-results/', '.vitest/'],
  },
  tseslint.configs.recommended,
  {
    rules: {
      // Leading underscore marks a parameter kept for its position (callbacks, interfaces).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // Test harnesses poke at browser pages and JSON replies; flag `any`, don't fail on it.
      '@typescript-eslint/no-explicit-any': 'warn',
    },
  },
  {
    files: ['src/**/*.ts', 'nodes/**/*.ts', 'server/**/*.ts'],
    plugins: { 'import-x': importX },
    rules: { 'import-x/no-restricted-paths': ['error', { zones: [...layerZones, graphZone] }] },
  },
  {
    // functions are named steps, not sections of a long body (tests and benches are exempt)
    files: ['src/**/*.ts'],
    rules: { 'max-lines-per-function': ['error', { max: 80, skipBlankLines: true, skipComments: true }] },
  },
  {
    files: ['ui/**/*.js', 'bin/**/*.js'],
    languageOptions: { sourceType: 'module' },
  },
);
