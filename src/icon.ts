/** The sidebar's icon: a key, drawn in the theme's icon colour (jp-icon3). */
import { LabIcon } from '@jupyterlab/ui-components';
import keySvg from '../style/icons/key.svg';

export const keyIcon = new LabIcon({
  name: 'chat-oauth2-nb:key',
  svgstr: keySvg
});
