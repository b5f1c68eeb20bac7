/**
 * Meetily's own history (its `meeting_minutes.sqlite`): meetings, transcript
 * segments, summaries. Same tables and the same writes in both runs.
 */
import Database from 'better-sqlite3';

export class MeetilyDb {
  private readonly db: Database.Database;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS meetings (id INTEGER PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL, created_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS transcripts (
        meeting_id INTEGER NOT NULL, idx INTEGER NOT NULL, start_ms REAL NOT NULL, end_ms REAL NOT NULL, text TEXT NOT NULL,
        PRIMARY KEY (meeting_id, idx)
      );
      CREATE TABLE IF NOT EXISTS summaries (meeting_id INTEGER PRIMARY KEY, markdown TEXT NOT NULL, requests INTEGER NOT NULL, created_at INTEGER NOT NULL);
    `);
  }

  createMeeting(title: string, source: 'live' | 'import'): number {
    return Number(this.db.prepare('INSERT INTO meetings (title, source, created_at) VALUES (?, ?, ?)').run(title, source, Date.now()).lastInsertRowid);
  }

  addTranscript(meetingId: number, idx: number, startMs: number, endMs: number, text: string): void {
    this.db.prepare('INSERT INTO transcripts (meeting_id, idx, start_ms, end_ms, text) VALUES (?, ?, ?, ?, ?)').run(meetingId, idx, startMs, endMs, text);
  }

  transcripts(meetingId: number): string[] {
    return (this.db.prepare('SELECT text FROM transcripts WHERE meeting_id = ? ORDER BY start_ms, idx').all(meetingId) as Array<{ text: string }>).map((r) => r.text);
  }

  saveSummary(meetingId: number, markdown: string, requests: number): void {
    this.db.prepare('INSERT OR REPLACE INTO summaries (meeting_id, markdown, requests, created_at) VALUES (?, ?, ?, ?)').run(meetingId, markdown, requests, Date.now());
  }

  counts(): { meetings: number; transcripts: number; summaries: number } {
    const count = (table: string) => (this.db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
    return { meetings: count('meetings'), transcripts: count('transcripts'), summaries: count('summaries') };
  }

  close(): void {
    this.db.close();
  }
}
