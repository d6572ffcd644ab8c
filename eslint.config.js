// Flat config: typescript-eslint's recommended rules on the TypeScript sources and tests, and on
// the browser editor's plain ES modules; generated and third-party files are not ours to lint.
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

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
    // functions are named steps, not sections of a long body (tests and benches are exempt)
    files: ['src/**/*.ts'],
    rules: { 'max-lines-per-function': ['error', { max: 80, skipBlankLines: true, skipComments: true }] },
  },
  {
    files: ['ui/**/*.js', 'bin/**/*.js'],
    languageOptions: { sourceType: 'module' },
  },
);
