import { createHash } from "node:crypto";
import { SerializationError, type ErrorRecord } from "./errors.js";

/**
 * Arguments and results travel as JSON text. Values JSON cannot carry (Date, Map, Set, BigInt,
 * undefined, Error, NaN and the infinities) are wrapped as {"$nenc": type, "v": value}; a plain
 * object that itself has a "$nenc" key is wrapped too, so decoding is never ambiguous. Anything
 * else (a function, a symbol, a class instance other than those) is refused with the path to it.
 */
const TAG = "$nenc";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** undefined, as it is stored: what every task that returns nothing stores as its result. */
const UNDEFINED_TEXT = JSON.stringify({ [TAG]: "undefined" });

export function serialize(value: unknown, what = "value"): string {
  if (value === undefined) return UNDEFINED_TEXT;
  if (isPlainJson(value, 0)) return JSON.stringify(value);
  return JSON.stringify(encode(value, what, new Set()));
}

export function deserialize<T = unknown>(text: string): T {
  const parsed = JSON.parse(text) as Json;
  return (text.includes(TAG) ? decode(parsed) : parsed) as T;
}

/** The longest canonical arguments a call key holds as they are; longer ones are digested. */
export const CALL_KEY_INLINE_MAX = 64;

/**
 * What tells one call of a task from another: its arguments as canonical JSON (object keys
 * sorted, so that their order does not make another call), as they are while short: readable, and
 * nearly free, since for arguments without objects that JSON is `argsText` (the arguments as
 * serialize() wrote them, which the invocation stores). Longer, a digest of it after '#' (which
 * canonical JSON, an array, never starts with). Encoding, sorting and digesting every call was
 * about half of an enqueueing process's time.
 */
export function callKey(args: readonly unknown[], argsText: string): string {
  const canonical = args.some(hasObject) ? JSON.stringify(sortKeys(encode(args, "arguments", new Set()))) : argsText;
  if (canonical.length <= CALL_KEY_INLINE_MAX) return canonical;
  return `#${createHash("sha256").update(canonical).digest("base64url").slice(0, 22)}`;
}

/** Whether an object (other than an array) is in `value`: its canonical JSON may then differ from its JSON. */
function hasObject(value: unknown): boolean {
  if (typeof value !== "object" || value === null) return false;
  return Array.isArray(value) ? value.some(hasObject) : true;
}

export function errorRecord(error: unknown): ErrorRecord {
  if (error instanceof Error) {
    return { name: error.name, message: error.message, ...(error.stack ? { stack: error.stack } : {}) };
  }
  return { name: "NonError", message: describe(error) };
}

/** The common case (numbers, strings, small arrays and objects) skips the encoder entirely. */
function isPlainJson(value: unknown, depth: number): boolean {
  if (depth > 8) return false;
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value);
    case "object": {
      if (value === null) return true;
      if (Array.isArray(value)) return value.every((item) => isPlainJson(item, depth + 1));
      if (Object.getPrototypeOf(value) !== Object.prototype) return false;
      for (const key in value) {
        if (key === TAG || !isPlainJson((value as Record<string, unknown>)[key], depth + 1)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

function encode(value: unknown, path: string, seen: Set<object>): Json {
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      return Number.isFinite(value) ? value : { [TAG]: "Number", v: String(value) };
    case "bigint":
      return { [TAG]: "BigInt", v: value.toString() };
    case "undefined":
      return { [TAG]: "undefined" };
    case "object":
      return value === null ? null : encodeObject(value, path, seen);
    default:
      throw new SerializationError(`${path} is a ${typeof value}, which cannot be serialized`);
  }
}

function encodeObject(value: object, path: string, seen: Set<object>): Json {
  if (seen.has(value)) throw new SerializationError(`${path} refers back to itself (a cycle)`);
  seen.add(value);
  try {
    if (value instanceof Date) return { [TAG]: "Date", v: value.toISOString() };
    if (value instanceof Error) return { [TAG]: "Error", v: encodeError(value, path, seen) };
    if (Array.isArray(value)) return value.map((item, i) => encode(item, `${path}[${i}]`, seen));
    if (value instanceof Map) {
      return { [TAG]: "Map", v: [...value].map(([k, v], i) => [encode(k, `${path}.key${i}`, seen), encode(v, `${path}.get(${i})`, seen)]) };
    }
    if (value instanceof Set) return { [TAG]: "Set", v: [...value].map((item, i) => encode(item, `${path}.item${i}`, seen)) };
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto !== Object.prototype && proto !== null) {
      const kind = (value as { constructor?: { name?: string } }).constructor?.name ?? "object";
      throw new SerializationError(`${path} is an instance of ${kind}, which cannot be serialized`);
    }
    const out: Record<string, Json> = {};
    for (const [key, item] of Object.entries(value)) out[key] = encode(item, `${path}.${key}`, seen);
    return TAG in out ? { [TAG]: "Object", v: out } : out;
  } finally {
    seen.delete(value);
  }
}

function encodeError(error: Error, path: string, seen: Set<object>): Json {
  const extra: Record<string, Json> = {};
  for (const [key, item] of Object.entries(error)) {
    if (typeof item !== "function") extra[key] = encode(item, `${path}.${key}`, seen);
  }
  return { name: error.name, message: error.message, stack: error.stack ?? null, extra };
}

function decode(value: Json): unknown {
  if (Array.isArray(value)) return value.map(decode);
  if (value === null || typeof value !== "object") return value;
  const tag = value[TAG];
  if (typeof tag !== "string") {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = decode(item);
    return out;
  }
  const v = value["v"] as Json;
  switch (tag) {
    case "undefined":
      return undefined;
    case "Number":
      return Number(v);
    case "BigInt":
      return BigInt(v as string);
    case "Date":
      return new Date(v as string);
    case "Map":
      return new Map((v as Json[][]).map(([k, item]) => [decode(k ?? null), decode(item ?? null)]));
    case "Set":
      return new Set((v as Json[]).map(decode));
    case "Object": {
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(v as Record<string, Json>)) out[key] = decode(item);
      return out;
    }
    case "Error":
      return decodeError(v as Record<string, Json>);
    default:
      throw new SerializationError(`unknown serialized type "${tag}"`);
  }
}

/** A decoded error's text field: a string as it is, another JSON value as JSON. */
function textOf(value: Json | undefined, fallback: string): string {
  if (value === undefined || value === null) return fallback;
  return typeof value === "string" ? value : JSON.stringify(value);
}

function decodeError(v: Record<string, Json>): Error {
  const error = new Error(textOf(v["message"], ""));
  error.name = textOf(v["name"], "Error");
  error.stack = typeof v["stack"] === "string" ? v["stack"] : `${error.name}: ${error.message}`;
  const extra = v["extra"];
  if (extra && typeof extra === "object" && !Array.isArray(extra)) {
    for (const [key, item] of Object.entries(extra)) (error as unknown as Record<string, unknown>)[key] = decode(item);
  }
  return error;
}

function sortKeys(value: Json): Json {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, Json> = {};
  for (const key of Object.keys(value).sort()) out[key] = sortKeys(value[key] as Json);
  return out;
}

function describe(value: unknown): string {
  try {
    return typeof value === "string" ? value : (JSON.stringify(value) ?? String(value));
  } catch {
    return String(value);
  }
}
