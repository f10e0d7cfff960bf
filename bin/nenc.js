#!/usr/bin/env node
// The nenc command. Plain JS so it starts under bare node: it registers the TypeScript loader
// (tsx) for both module systems, so a user's task module in .ts loads whether its package is ESM
// or CommonJS, then hands over to the CLI.
import { register as registerCommonJs } from "tsx/cjs/api";
import { register } from "tsx/esm/api";

registerCommonJs();
register();
await import("../src/cli/main.ts");
