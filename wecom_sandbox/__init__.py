"""A local stand-in for WeCom: the cgi-bin APIs we call, the callbacks WeCom sends, and knobs for faults."""
