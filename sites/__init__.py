"""Site generation (queue site-generation): Claude writes a site's content, templates render it, every
token it costs is recorded with the site."""
