#!/usr/bin/env node
// The nenc command. Plain JS so it starts under bare node: it registers the TypeScript loader
// (tsx), then hands over to the CLI, which can then import user task modules written in .ts too.
import { register } from "tsx/esm/api";

register();
await import("../src/cli/main.ts");
