// The hub's GraphiQL: local libraries, one tab per example, the explorer plugin, and the
// API key sent as a header (HTTP) or connection parameter (websocket).
(function () {
  "use strict";
  var mount = document.getElementById("graphiql");
  if (!window.React || !window.ReactDOM || !window.GraphiQL) {
    mount.innerHTML =
      '<p class="missing">The explorer\'s libraries are not installed on this server. ' +
      "Run <code>scripts/setup</code> (it needs Node.js and npm) and reload.</p>";
    return;
  }
  var examples = JSON.parse(document.getElementById("examples").textContent);
  var url = new URL("/graphql", window.location.href).href;
  var subscriptionUrl = url.replace(/^http/, "ws");

  var cache = { key: null, fetcher: null };
  function currentFetcher() {
    var key = window.HubKey.get();
    if (cache.fetcher === null || cache.key !== key) {
      cache.key = key;
      cache.fetcher = window.GraphiQL.createFetcher({
        url: url,
        subscriptionUrl: subscriptionUrl,
        headers: window.HubKey.headers(),
        wsConnectionParams: window.HubKey.headers(),
      });
    }
    return cache.fetcher;
  }
  // Right after a tab switch GraphiQL can send the previous tab's operation name with the new
  // tab's document, which the server rightly refuses. A name the document does not define is
  // replaced by the document's only operation name (GraphiQL's fetcher picks the websocket for
  // a subscription by that name: without it a subscription would go over HTTP, which the hub
  // refuses), or dropped when there are several (the server then says which to choose).
  var OPERATION = /\b(?:query|mutation|subscription)\s+([_A-Za-z][_0-9A-Za-z]*)/g;
  function withoutComments(query) {
    return query.replace(/#[^\n]*/g, "");  // comments may say "query" too
  }
  function operationNames(query) {
    var names = [];
    var match;
    var code = withoutComments(query);
    OPERATION.lastIndex = 0;
    while ((match = OPERATION.exec(code)) !== null) names.push(match[1]);
    return names;
  }
  function isSubscription(query, name) {
    return new RegExp("\\bsubscription\\s+" + name + "\\b").test(withoutComments(query));
  }
  function fetcher(params, options) {
    if (params && typeof params.query === "string") {
      var names = operationNames(params.query);
      if (names.indexOf(params.operationName) < 0) {
        var only = names.length === 1 ? names[0] : undefined;
        params = Object.assign({}, params, { operationName: only });
      }
      // GraphiQL chooses the websocket from `options.documentAST`, which right after a tab
      // switch can still be the previous tab's document: describe the operation it must see.
      if (params.operationName && isSubscription(params.query, params.operationName)) {
        options = Object.assign({}, options, {
          documentAST: {
            kind: "Document",
            definitions: [{
              kind: "OperationDefinition",
              operation: "subscription",
              name: { kind: "Name", value: params.operationName },
              selectionSet: { kind: "SelectionSet", selections: [] },
            }],
          },
        });
      }
    }
    return currentFetcher()(params, options);
  }

  // GraphiQL reads the schema once, at start: a new key (e.g. the first one typed in) needs a
  // fresh start so that introspection runs with it.
  var keyAtStart = window.HubKey.get();
  window.HubKey.bind(document.getElementById("api-key"), function () {
    if (window.HubKey.get() !== keyAtStart) window.location.reload();
  });
  // The explorer plugin is one click away in the sidebar; it starts closed, because open it
  // takes a third of a 1280-pixel screen and the query editor would cut its lines off.
  var plugins = [];
  if (window.GraphiQLPluginExplorer) {
    plugins.push(window.GraphiQLPluginExplorer.explorerPlugin());
  }
  // GraphiQL fills the first tab's variables editor from its `variables` prop or from what it
  // stored in an earlier visit, not from `defaultTabs`: in a fresh browser the first example
  // would open with empty variables. Once GraphiQL has stored its tabs it restores them (and
  // their variables) itself, and the prop must not overwrite the tab the user left open.
  function hasStoredTabs() {
    try {
      return window.localStorage.getItem("graphiql:tabState") !== null;
    } catch (blocked) {
      return false;
    }
  }
  var firstVisit = !hasStoredTabs();
  // On a first visit the query editor gets 8/13 of the width instead of half, so that the
  // examples' lines (62 characters at most, hub/http/explorer.py) fit at 1280x800. The key is
  // GraphiQL's own: dragging the bar stores the user's choice there.
  if (firstVisit) {
    try {
      window.localStorage.setItem("graphiql:editorFlex", "1.6");
    } catch (blocked) {
      // Storage disabled: GraphiQL then splits the width in half.
    }
  }

  window.ReactDOM.createRoot(mount).render(
    window.React.createElement(window.GraphiQL, {
      fetcher: fetcher,
      plugins: plugins,
      variables: firstVisit && examples.length ? examples[0].variables || undefined : undefined,
      defaultTabs: examples.map(function (example) {
        return { query: example.query, variables: example.variables || undefined };
      }),
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
    })
  );
})();
