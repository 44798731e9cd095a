// What a document may ask before any of it runs. Size and nesting are checked before graphql-js
// parses and validates it, cost before validation (variables unknown) and again before execution,
// so a small document cannot keep the event loop busy: every check here is linear in its size.
import { type DocumentNode, Kind, Lexer, type SelectionSetNode, Source, TokenKind } from 'graphql';
import mercurius from 'mercurius';
import { documentCost, MAX_COST } from './cost.ts';

const { ErrorWithProps } = mercurius;

/** Enough for 4,900 `cN: commitment(id: "…") { id }` aliases, the most MAX_COST lets through. */
export const MAX_TOKENS = 60_000;
/**
 * Levels of fields, inline fragments and fragment spreads. Field depth is limited to far fewer
 * (MAX_DEPTH) after validation; this bounds fragment chains, which graphql-js walks recursively.
 */
export const MAX_NESTING = 64;

export function refuseTooLarge(source: string): void {
  const lexer = new Lexer(new Source(source));
  let tokens = 0;
  try {
    while (tokens <= MAX_TOKENS && lexer.advance().kind !== TokenKind.EOF) tokens++;
  } catch {
    return; // a syntax error: the parser reports it
  }
  if (tokens > MAX_TOKENS) {
    throw new ErrorWithProps(`This query has more than ${MAX_TOKENS} tokens. Ask for less in one query.`, {
      code: 'QUERY_TOO_LARGE',
      limit: MAX_TOKENS,
    });
  }
}

/** Refuses a document nested deeper than MAX_NESTING, measuring each fragment once. */
export function refuseTooDeep(document: DocumentNode): void {
  const fragments = new Map(
    document.definitions.flatMap((d) => (d.kind === Kind.FRAGMENT_DEFINITION ? [[d.name.value, d]] : [])),
  );
  const fragmentDepths = new Map<string, number>();
  const tooDeep = () =>
    new ErrorWithProps(`This query nests deeper than ${MAX_NESTING} levels, counting fragments.`, {
      code: 'QUERY_TOO_DEEP',
      limit: MAX_NESTING,
    });

  // `above` is how deep this walk already is, so it stops before nesting (and its stack) grows far.
  const depthOf = (selections: SelectionSetNode | undefined, above: number): number => {
    if (above > MAX_NESTING) throw tooDeep();
    let deepest = 0;
    for (const selection of selections?.selections ?? []) {
      const below =
        selection.kind === Kind.FRAGMENT_SPREAD
          ? fragmentDepth(selection.name.value, above + 1)
          : depthOf(selection.selectionSet, above + 1);
      deepest = Math.max(deepest, 1 + below);
    }
    if (above + deepest > MAX_NESTING) throw tooDeep();
    return deepest;
  };

  const fragmentDepth = (name: string, above: number): number => {
    const known = fragmentDepths.get(name);
    if (known !== undefined) return known;
    fragmentDepths.set(name, 0); // a cycle adds nothing: validation refuses it anyway
    const depth = depthOf(fragments.get(name)?.selectionSet, above);
    fragmentDepths.set(name, depth);
    return depth;
  };

  // Unused fragments too: validation walks every fragment definition.
  for (const definition of document.definitions) {
    if (definition.kind === Kind.OPERATION_DEFINITION) depthOf(definition.selectionSet, 0);
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragmentDepth(definition.name.value, 0);
  }
}

/** Before validation the variables are not known yet, and the cost counted is the least they allow. */
export function refuseTooCostly(document: DocumentNode, variables?: Record<string, unknown>): void {
  const cost = documentCost(document, variables);
  if (cost > MAX_COST) {
    throw new ErrorWithProps(
      `This query costs ${cost}; the limit is ${MAX_COST}. Ask for fewer items or fields.`,
      { code: 'QUERY_TOO_COSTLY', cost, limit: MAX_COST },
    );
  }
}
