/**
 * The `nar` vectors of fixtures/nar.json (known answers, each with its
 * public source) and the conversion of their tree descriptions into the
 * encoder's in-memory `NarTree`, shared by the encoder and parser tests.
 */

import type { NarTree } from '../../src/nix/nar/encoder.js';

export interface VectorTree {
  type: 'regular' | 'symlink' | 'directory';
  executable?: boolean;
  contentsUtf8?: string;
  target?: string;
  entries?: Record<string, VectorTree>;
}

export interface NarVector {
  name: string;
  tree?: VectorTree;
  narBase64?: string;
  narSize: number;
  sha256Hex: string;
  sha256Sri?: string;
  md5Hex?: string;
  sha1Hex?: string;
}

const utf8 = new TextEncoder();

export function vectorToTree(v: VectorTree): NarTree {
  if (v.type === 'regular')
    return { type: 'regular', executable: v.executable === true, contents: utf8.encode(v.contentsUtf8!) };
  if (v.type === 'symlink') return { type: 'symlink', target: v.target! };
  const entries: Record<string, NarTree> = {};
  for (const [k, c] of Object.entries(v.entries!)) entries[k] = vectorToTree(c);
  return { type: 'directory', entries };
}
