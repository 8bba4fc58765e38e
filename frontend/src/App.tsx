import { useCallback, useEffect, useMemo, useState } from 'react';
import { buildTimeline } from './chatState';
import { Composer } from './components/Composer';
import { Header } from './components/Header';
import { MessageList } from './components/MessageList';
import { ErrorBanner } from './components/Notices';
import { readPageParams } from './config';
import { useChat } from './useChat';

export function App() {
  const params = useMemo(() => readPageParams(window.location.search), []);
  const chat = useChat(params);
  const [sendCount, setSendCount] = useState(0);
  const items = useMemo(() => buildTimeline(chat.state), [chat.state]);
  const ready = chat.phase.kind === 'ready';
  const displayName = chat.agent ? chat.agent.displayName || chat.agent.name : null;
  const { send, attach } = chat;

  useEffect(() => {
    document.title = displayName ? `${displayName} · Support chat` : 'Support chat';
  }, [displayName]);

  const onSend = useCallback(
    (text: string) => {
      const ok = send(text);
      if (ok) setSendCount((n) => n + 1);
      return ok;
    },
    [send],
  );

  const onAttach = useCallback(
    (file: File) => {
      const ok = attach(file);
      if (ok) setSendCount((n) => n + 1);
      return ok;
    },
    [attach],
  );

  return (
    <div className="app">
      <Header agent={chat.agent} status={chat.status}
        ready={ready}
        failed={chat.phase.kind === 'failed'}
        sessionStatus={chat.state.sessionStatus}
        handler={chat.state.handler}
        onNewConversation={chat.newConversation} />
      <main className="main">
        <MessageList
          greeting={chat.agent?.greeting?.trim() || null}
          items={items}
          loading={chat.phase.kind === 'loading' && chat.agent !== null}
          onDismissError={chat.dismissError}
          onDismissUpload={chat.dismissUpload}
          sendCount={sendCount}
        />
        {chat.phase.kind === 'failed' && (
          <div className="boot-error">
            <ErrorBanner message={chat.phase.message} onRetry={chat.retry} />
          </div>
        )}
      </main>
      <Composer
        disabled={!ready}
        onSend={onSend}
        onAttach={chat.agent?.attachmentsEnabled === false ? undefined : onAttach}
        placeholder={chat.state.sessionStatus === 'bot' ? 'Ask a question…' : 'Write a message…'}
      />
    </div>
  );
}
