"""Site generation (queue site-generation): Claude writes a site, templates render it, token cost is tracked. Not built yet."""
