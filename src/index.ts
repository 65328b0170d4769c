/**
 * chat-oauth2-nb: the JupyterLab 4 / Notebook 7 extension of chat_oauth2_nb.
 *
 * - `chat-oauth2-nb:sidebar`: the left-area panel, its commands and settings;
 * - `chat-oauth2-nb:widgets`: the panel's widget views (CONTRACT part B), registered only
 *   when the Jupyter widgets manager is there.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { TabPanel } from '@lumino/widgets';
import { IJupyterWidgetRegistry } from '@jupyter-widgets/base';

import { ApiClient, Fetcher } from './api';
import { keyIcon } from './icon';
import { ISidebarSettings, OAuth2Sidebar } from './sidebar';
import { MODULE_NAME, MODULE_VERSION } from './version';

const PLUGIN_ID = 'chat-oauth2-nb:sidebar';

/** The palette's commands. */
export namespace CommandIDs {
  export const open = 'chat-oauth2:open';
  export const reload = 'chat-oauth2:reload';
  export const refreshAll = 'chat-oauth2:refresh-all';
}

const DEFAULTS: ISidebarSettings = {
  expiresSoonSeconds: 300,
  confirmRevoke: true
};

/** The API's requests through ServerConnection: Jupyter's token/cookie and XSRF header. */
export function serverFetcher(
  settings = ServerConnection.makeSettings()
): Fetcher {
  return (path, init) =>
    ServerConnection.makeRequest(
      URLExt.join(settings.baseUrl, 'chat-oauth2', 'api', path),
      init,
      settings
    );
}

/** Notebook 7's file browser page: a tab panel (Files, Running) in the main area. */
function findTreePanel(app: JupyterFrontEnd): TabPanel | null {
  for (const widget of app.shell.widgets('main')) {
    if (widget instanceof TabPanel && widget.hasClass('jp-TreePanel')) {
      return widget;
    }
  }
  return null;
}

const sidebarPlugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'A sidebar listing every OAuth2 provider and token of chat_oauth2_nb.',
  autoStart: true,
  optional: [ICommandPalette, ISettingRegistry, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    registry: ISettingRegistry | null,
    restorer: ILayoutRestorer | null
  ) => {
    const settings = ServerConnection.makeSettings();
    const sidebar = new OAuth2Sidebar(
      new ApiClient(serverFetcher(settings)),
      { ...DEFAULTS },
      PageConfig.getBaseUrl()
    );
    sidebar.title.icon = keyIcon;
    // Notebook 7's file browser page has no side areas: there the sidebar is a tab next to
    // Files and Running. Everywhere else (JupyterLab, Notebook 7's notebook page) it is a
    // left-area panel.
    let treePanel: TabPanel | null = null;
    const notebookPage = PageConfig.getOption('notebookPage');
    if (notebookPage) {
      // Notebook 7 names side panels (View > Left Sidebar) and tabs by their label.
      sidebar.title.label = 'OAuth2';
    }
    if (notebookPage === 'tree') {
      void app.restored.then(() => {
        const tree = findTreePanel(app);
        if (tree) {
          treePanel = tree;
          tree.addWidget(sidebar);
        } else {
          app.shell.add(sidebar, 'left', { rank: 850, type: 'OAuth2' });
        }
      });
    } else {
      app.shell.add(sidebar, 'left', { rank: 850, type: 'OAuth2' });
      restorer?.add(sidebar, sidebar.id);
    }

    app.commands.addCommand(CommandIDs.open, {
      label: 'OAuth2: Show providers and tokens',
      icon: keyIcon,
      execute: () => {
        if (treePanel) {
          treePanel.currentWidget = sidebar;
        } else {
          app.shell.activateById(sidebar.id);
        }
      }
    });
    app.commands.addCommand(CommandIDs.reload, {
      label: 'OAuth2: Reload providers and tokens',
      execute: () => sidebar.reload()
    });
    app.commands.addCommand(CommandIDs.refreshAll, {
      label: 'OAuth2: Refresh all tokens',
      execute: () => sidebar.refreshAll()
    });
    for (const command of Object.values(CommandIDs)) {
      palette?.addItem({ command, category: 'OAuth2' });
    }

    if (registry) {
      void registry
        .load(PLUGIN_ID)
        .then(loaded => {
          const apply = (): void => {
            sidebar.settings = {
              expiresSoonSeconds: Number(
                loaded.get('expiresSoonSeconds').composite ??
                  DEFAULTS.expiresSoonSeconds
              ),
              confirmRevoke: loaded.get('confirmRevoke').composite !== false
            };
            sidebar.render();
          };
          apply();
          loaded.changed.connect(apply);
        })
        .catch(reason =>
          console.warn('chat-oauth2-nb: settings not loaded', reason)
        );
    }
    // Read the state now, so the sidebar is current the moment it is opened.
    void sidebar.reload();
  }
};

const widgetsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'chat-oauth2-nb:widgets',
  description:
    'The countdown and copy-button widget views of the chat_oauth2_nb panel.',
  autoStart: true,
  optional: [IJupyterWidgetRegistry],
  activate: (app: JupyterFrontEnd, registry: IJupyterWidgetRegistry | null) => {
    if (!registry) {
      return;
    }
    registry.registerWidget({
      name: MODULE_NAME,
      version: MODULE_VERSION,
      exports: () => import('./widgets') as any
    });
  }
};

export default [sidebarPlugin, widgetsPlugin];
