import type { UploadState } from '../chatState';

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10 * 1024 ? 1 : 0)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

function FileGlyph() {
  return (
    <svg className="file-chip__icon" viewBox="0 0 24 24" width="18" height="18" aria-hidden="true">
      <path
        d="M14 3H7a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h10a2 2 0 0 0 2-2V8l-5-5Z M14 3v5h5"
        fill="none"
        stroke="currentColor"
        strokeWidth="1.8"
        strokeLinejoin="round"
      />
    </svg>
  );
}

/** A file the customer attached, as stored in the conversation. */
export function AttachmentChip({ filename, title }: { filename: string; title: string }) {
  return (
    <div className="row row--user">
      <div className="file-chip" data-testid="attachment-chip" data-status="stored" title={title}>
        <FileGlyph />
        <span className="file-chip__name">{filename}</span>
        <span className="file-chip__meta">Attached</span>
      </div>
    </div>
  );
}

const FAILURE_TITLES: Record<number, string> = {
  403: 'Files are not accepted here',
  413: 'File too large',
  415: 'Unsupported file type',
  422: 'No text could be read from this file',
};

/** A file being uploaded, or refused with the edge's reason. */
export function UploadChip({ upload, onDismiss }: { upload: UploadState; onDismiss: () => void }) {
  const failed = upload.status === 'failed';
  const heading = failed ? (upload.httpStatus !== null ? FAILURE_TITLES[upload.httpStatus] : undefined) ?? 'Not attached' : null;
  return (
    <div className="row row--user">
      <div className="stack stack--end">
        <div
          className={`file-chip${failed ? ' file-chip--failed' : ' file-chip--uploading'}`}
          data-testid="attachment-chip"
          data-status={upload.status}
          aria-busy={!failed}
        >
          <FileGlyph />
          <span className="file-chip__name">{upload.filename}</span>
          <span className="file-chip__meta">{failed ? formatBytes(upload.sizeBytes) : 'Uploading…'}</span>
          {failed && (
            <button type="button" className="icon-button" onClick={onDismiss} aria-label={`Dismiss ${upload.filename}`} title="Dismiss">
              <svg viewBox="0 0 24 24" width="14" height="14" aria-hidden="true">
                <path d="M6 6l12 12M18 6L6 18" stroke="currentColor" strokeWidth="2" strokeLinecap="round" />
              </svg>
            </button>
          )}
        </div>
        {failed && (
          <p className="meta meta--error" role="alert" data-testid="attachment-error" data-status={upload.httpStatus ?? ''}>
            {heading}: {upload.error}
          </p>
        )}
      </div>
    </div>
  );
}
