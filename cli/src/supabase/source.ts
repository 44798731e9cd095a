// Reading a Supabase project (the tables of source-schema.sql) over a plain pg connection. Rows come
// as the source holds them; what they mean is map-*.ts's business.
import pg from 'pg';

export interface SourceUser {
  id: string;
  email: string | null;
  encrypted_password: string | null;
  email_confirmed_at: Date | null;
  raw_user_meta_data: Record<string, unknown> | null;
  created_at: Date | null;
  banned_until: Date | null;
  deleted_at: Date | null;
  is_anonymous: boolean;
}

export interface SourceIdentity {
  provider_id: string;
  user_id: string;
  identity_data: Record<string, unknown>;
  provider: string;
  last_sign_in_at: Date | null;
  created_at: Date | null;
}

export interface SourceProfile {
  id: string;
  display_name: string | null;
  avatar_url: string | null;
}

export interface SourceType {
  id: string;
  name: string;
  description: string | null;
  config: Record<string, unknown>;
}

export interface SourceCommitment {
  id: string;
  type_id: string;
  creator_id: string;
  title: string;
  description: string | null;
  terms: unknown;
  status: string;
  /** bigint arrives as text. */
  amount_cents: string | null;
  currency: string | null;
  due_date: Date | null;
  created_at: Date;
  updated_at: Date;
}

export interface SourceParty {
  commitment_id: string;
  user_id: string;
  role: string;
  status: string;
  invited_at: Date;
  responded_at: Date | null;
}

export interface SourceDocument {
  id: string;
  commitment_id: string;
  name: string;
  version: number;
  storage_path: string;
  mime_type: string | null;
  size_bytes: string | null;
  uploaded_by: string | null;
  created_at: Date;
}

export interface SourceHistory {
  id: string;
  commitment_id: string;
  changed_by: string | null;
  change_type: string;
  old_data: Record<string, unknown> | null;
  new_data: Record<string, unknown> | null;
  created_at: Date;
}

/** One commitment and the rows that hang off it. */
export interface SourceCommitmentRows {
  commitment: SourceCommitment;
  parties: SourceParty[];
  documents: SourceDocument[];
  history: SourceHistory[];
}

export interface Source {
  users(): Promise<SourceUser[]>;
  identities(): Promise<SourceIdentity[]>;
  profiles(): Promise<SourceProfile[]>;
  types(): Promise<SourceType[]>;
  commitmentIds(): Promise<string[]>;
  /** The commitments of `ids`, each with its parties, documents and history (in order). */
  commitments(ids: string[]): Promise<SourceCommitmentRows[]>;
  close(): Promise<void>;
}

export async function openSource(url: string): Promise<Source> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  // One snapshot for the whole read, so rows added meanwhile cannot half appear.
  await client.query('begin isolation level repeatable read read only');
  const rows = async <T extends pg.QueryResultRow>(text: string, values: unknown[] = []) =>
    (await client.query<T>(text, values)).rows;
  return {
    users: () =>
      rows<SourceUser>(
        `select id, email, encrypted_password, email_confirmed_at, raw_user_meta_data, created_at,
                banned_until, deleted_at, is_anonymous
           from auth.users order by created_at nulls first, id`,
      ),
    identities: () =>
      rows<SourceIdentity>(
        `select provider_id, user_id, identity_data, provider, last_sign_in_at, created_at
           from auth.identities order by created_at nulls first, id`,
      ),
    profiles: () => rows<SourceProfile>('select id, display_name, avatar_url from public.profiles'),
    types: () =>
      rows<SourceType>(
        'select id, name, description, config from public.commitment_types order by created_at, id',
      ),
    commitmentIds: async () =>
      (await rows<{ id: string }>('select id from public.commitments order by created_at, id')).map(
        (row) => row.id,
      ),
    commitments: async (ids) => {
      // One client runs one query at a time.
      const commitments = await rows<SourceCommitment>(
        'select * from public.commitments where id = any($1::uuid[])',
        [ids],
      );
      const parties = await rows<SourceParty>(
        'select * from public.commitment_parties where commitment_id = any($1::uuid[]) order by invited_at, user_id',
        [ids],
      );
      const documents = await rows<SourceDocument>(
        'select * from public.commitment_documents where commitment_id = any($1::uuid[]) order by name, version',
        [ids],
      );
      const history = await rows<SourceHistory>(
        'select id::text, commitment_id, changed_by, change_type, old_data, new_data, created_at from public.commitment_history where commitment_id = any($1::uuid[]) order by created_at, id',
        [ids],
      );
      const of = <T extends { commitment_id: string }>(list: T[], id: string) =>
        list.filter((row) => row.commitment_id === id);
      return ids.flatMap((id) => {
        const commitment = commitments.find((c) => c.id === id);
        return commitment
          ? [
              {
                commitment,
                parties: of(parties, id),
                documents: of(documents, id),
                history: of(history, id),
              },
            ]
          : [];
      });
    },
    close: async () => {
      await client.query('rollback').catch(() => undefined);
      await client.end();
    },
  };
}
