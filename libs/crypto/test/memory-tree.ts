// An in-memory store of every complete subtree hash, for tests: the same shape the ledger stores.
import { appendLeaf, type HashedNode, nodeKey, type TreeNode } from '../src/index.ts';

export class MemoryTree {
  private readonly nodes = new Map<string, Uint8Array>();
  private peaks: HashedNode[] = [];
  size = 0;

  constructor(leafHashes: Iterable<Uint8Array> = []) {
    for (const hash of leafHashes) this.append(hash);
  }

  append(hash: Uint8Array): void {
    const { peaks, completed } = appendLeaf(this.peaks, this.size, hash);
    for (const node of completed) this.nodes.set(nodeKey(node), node.hash);
    this.peaks = peaks;
    this.size++;
  }

  read = (node: TreeNode): Uint8Array => {
    const hash = this.nodes.get(nodeKey(node));
    if (!hash) throw new Error(`no stored hash for ${nodeKey(node)}`);
    return hash;
  };
}
