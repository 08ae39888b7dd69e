/** @nightshift/album: static albums of rendered images, as a folder, a .zip or a share page. */
export { MAX_ALBUM_IMAGES, type Album, type AlbumImage } from './album.js';
export { albumFiles, imageFiles, type AlbumFile, type AlbumFileOptions } from './files.js';
export { ALBUM_CSS_HASH, albumHtml } from './html.js';
// The album's escaping is the project's one (@nightshift/common), re-exported for its callers.
export { escapeHtml } from '@nightshift/common';
export { albumZip, writeAlbumFolder, type ReadObject, type WriteOptions } from './write.js';
