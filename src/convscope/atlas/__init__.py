"""convscope.atlas"""
