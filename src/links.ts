/** Where the API's start link points, as a URL a new tab can open. */

const SCHEME = /^[a-z][a-z0-9+.-]*:/i;

/** Resolve the start link: absolute, an absolute path, or relative to the base URL. */
export function absoluteLink(
  link: string,
  baseUrl: string,
  origin: string
): string {
  if (SCHEME.test(link)) {
    return link;
  }
  if (link.startsWith('/')) {
    return origin + link;
  }
  const base = SCHEME.test(baseUrl) ? baseUrl : origin + baseUrl;
  return base.replace(/\/*$/, '/') + link.replace(/^\/+/, '');
}
