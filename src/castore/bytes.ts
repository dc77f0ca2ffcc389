/** The byte helpers castore uses, from the shared module (src/bytes.ts). */

export { bytesEqual, compareBytes, copyBytes, displayBytes, utf8 } from '../bytes.js';
