/**
 * Titles of the tests that compare the native addon with its JavaScript twin: they run where the
 * addon is built and loaded, and elsewhere are skipped with the reason in their title. That the
 * addon is built where it should be is test/native/loader.test.ts's job (and .ci/run's).
 */

export const ADDON_ABSENT = 'skipped: the native addon is not built here, or FETCH_CACHE_NO_NATIVE=1';

/** `title`, or `title` with the reason it is skipped when the capability is absent. */
export function withAddon(title: string, capability: unknown): string {
  return capability === undefined ? `${title} (${ADDON_ABSENT})` : title;
}
