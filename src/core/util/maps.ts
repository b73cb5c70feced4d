/** The value `map` holds for `key`; when it holds none, `make`'s, stored first. */
export function getOrSet<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let v = map.get(key);
  if (v === undefined) map.set(key, (v = make()));
  return v;
}
