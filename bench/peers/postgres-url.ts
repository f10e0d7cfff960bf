import { userInfo } from "node:os";

/**
 * The URL with a user name in it: like libpq (and nenc), PGUSER or the OS user when the URL names
 * nobody, since the peers' driver would otherwise send no name at all.
 */
export function withUser(url: string): string {
  const parsed = new URL(url);
  if (parsed.username) return url;
  parsed.username = encodeURIComponent(process.env["PGUSER"] || userInfo().username);
  return parsed.toString();
}
