"""convscope.scan"""
