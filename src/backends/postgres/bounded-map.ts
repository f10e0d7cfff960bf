/**
 * Set `key` in `map` as its newest entry (a Map keeps insertion order), then forget the oldest
 * entries beyond `limit`: a memory of recent things that a long-lived process cannot grow without end.
 */
export function setNewest<K, V>(map: Map<K, V>, key: K, value: V, limit: number): void {
  map.delete(key);
  map.set(key, value);
  while (map.size > limit) map.delete(map.keys().next().value!);
}
