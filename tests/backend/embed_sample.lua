-- every byte C reads otherwise: " \ \n ??= ??/ ??' ??( ??) ??! ??< ??> ??-
	local s = 'tab\there' -- "quoted"
-- UTF-8: µs, ≤ 2^53; octal-looking after an escape: 7 0

-- no newline at the end