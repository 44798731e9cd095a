// A query's cost: every field selected costs 1 for each object it is fetched for, and a connection
// multiplies what is below it by its page size. A fragment costs what its selections cost wherever
// it is spread, so each is costed once: fragments that spread others twice over double the cost
// at each level, never the work of computing it.
import {
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  Kind,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValueNode,
} from 'graphql';

export const MAX_COST = 10_000;
const DEFAULT_PAGE = 20;
/** The fields that are connections, paged by `first`. */
const CONNECTIONS = new Set(['commitments', 'notifications']);

/** Variables not known yet (before validation) count a page given by one as 1: the least it can be. */
function pageSize(field: FieldNode, variables: Record<string, unknown> | undefined): number {
  const first = field.arguments?.find((arg) => arg.name.value === 'first')?.value;
  if (first?.kind === Kind.VARIABLE && variables === undefined) return 1;
  const value = (node: ValueNode | undefined): unknown =>
    node?.kind === Kind.INT
      ? Number(node.value)
      : node?.kind === Kind.VARIABLE
        ? variables?.[node.name.value]
        : undefined;
  const size = value(first);
  return typeof size === 'number' && size > 0 ? size : DEFAULT_PAGE;
}

/** The cost of the most costly operation in a document. */
export function documentCost(document: DocumentNode, variables?: Record<string, unknown>): number {
  const fragments = new Map(
    document.definitions
      .filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION)
      .map((d) => [d.name.value, d]),
  );
  const fragmentCosts = new Map<string, number>();

  const costOf = (selections: SelectionSetNode | undefined): number => {
    let cost = 0;
    for (const selection of selections?.selections ?? []) {
      if (selection.kind === Kind.FIELD) {
        const multiplier = CONNECTIONS.has(selection.name.value) ? pageSize(selection, variables) : 1;
        cost += 1 + multiplier * costOf(selection.selectionSet);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        cost += costOf(selection.selectionSet);
      } else {
        cost += fragmentCost(selection.name.value);
      }
    }
    return cost;
  };

  const fragmentCost = (name: string): number => {
    const known = fragmentCosts.get(name);
    if (known !== undefined) return known;
    fragmentCosts.set(name, 0); // a cycle adds nothing: validation refuses it anyway
    const cost = costOf(fragments.get(name)?.selectionSet);
    fragmentCosts.set(name, cost);
    return cost;
  };

  const costs = document.definitions
    .filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION)
    .map((operation) => costOf(operation.selectionSet));
  return Math.max(0, ...costs);
}
