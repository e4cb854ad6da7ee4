"""Operations on the network itself: adding a member and previewing what it will receive.

May import everything below ``stafet.night`` (core, context, duties, keys).
"""
