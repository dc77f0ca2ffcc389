/**
 * The part of `unbzip2-stream` (no bundled types) that fetch-cache uses: its
 * block decoder, `lib/bzip2.js`; src/fetchers/decompress.ts declares the
 * shape it relies on and drives it itself.
 */
declare module 'unbzip2-stream/lib/bzip2.js' {
  const bzip2: unknown;
  export default bzip2;
}
