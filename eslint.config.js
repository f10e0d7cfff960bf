// ESLint flat config. The style guide asks for typescript-eslint with type-aware rules, keeping
// no-floating-promises and no-misused-promises on (in a runner a floating promise is a lost task),
// and for no circular imports. This is a focused set of correctness rules, not a style guide:
// formatting and naming are left alone.
import js from "@eslint/js";
import { defineConfig } from "eslint/config";
import { createTypeScriptImportResolver } from "eslint-import-resolver-typescript";
import { importX } from "eslint-plugin-import-x";
import tseslint from "typescript-eslint";

const nodeGlobals = {
  process: "readonly",
  console: "readonly",
  Buffer: "readonly",
  URL: "readonly",
  setTimeout: "readonly",
  clearTimeout: "readonly",
  setInterval: "readonly",
  clearInterval: "readonly",
  setImmediate: "readonly",
};

export default defineConfig(
  {
    // scratch/ is private, git-ignored experiments; the rest is generated or installed.
    ignores: ["node_modules/", "scratch/", "tmp/", ".nenc/", "docs/"],
  },

  // Plain JS entry points (bin/, scripts/, this file): ESLint's recommended rules, no type info.
  {
    files: ["**/*.{js,mjs,cjs}"],
    ...js.configs.recommended,
    languageOptions: { ecmaVersion: "latest", sourceType: "module", globals: nodeGlobals },
  },

  // TypeScript: typescript-eslint's type-checked recommended set, through the project service
  // (tsconfig.json covers src/, test/, bench/ and examples/).
  {
    files: ["**/*.ts"],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    plugins: { "import-x": importX },
    settings: {
      // import-x must parse the imported .ts modules too to follow a cycle through them.
      "import-x/extensions": [".ts", ".js", ".mjs", ".cjs"],
      "import-x/parsers": { "@typescript-eslint/parser": [".ts"] },
      "import-x/resolver-next": [createTypeScriptImportResolver({ project: "./tsconfig.json" })],
    },
    rules: {
      // The rules the style guide names, spelled out so they stay on whatever the preset does.
      "@typescript-eslint/no-floating-promises": [
        "error",
        {
          // node:test's describe()/it() return promises that the test runner itself tracks.
          allowForKnownSafeCalls: [{ from: "package", package: "node:test", name: ["describe", "it", "test", "suite"] }],
        },
      ],
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/await-thenable": "error",
      // Off: flags async functions without an await (interface implementations, task bodies),
      // which are correct as written; dropping `async` would turn a throw into a sync one.
      "@typescript-eslint/require-await": "off",
      // An unused binding is allowed when named with a leading underscore, or when it is a rest
      // sibling (`const { tasks: _tasks, ...rest } = ...`) used to leave a key out.
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrorsIgnorePattern: "^_", ignoreRestSiblings: true },
      ],
      // No circular imports. `import type` is erased at compile time and is not counted.
      "import-x/no-cycle": "error",
    },
  },
);
